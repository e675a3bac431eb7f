package steps

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/fsops/fsopstest"
	"github.com/imgbake/imgbake/recipes"
)

// An applyCase carries out one kind's example (or its own step) on a fake
// session and checks the effect: files through the in-process agent,
// commands through the fake's record. Every registered kind needs one
// (TestRegistry enforces it).
type applyCase struct {
	step    string                          // YAML of the step; "" uses the kind's example
	setup   func(t *testing.T, root string) // beyond the base image tree
	handler fsopstest.Handler               // nil: every command succeeds silently
	check   func(t *testing.T, c applyRun)
	again   bool   // idempotent on the fake: a second apply must report ok
	onceWhy string // why an idempotent kind is applied only once here
}

type applyRun struct {
	root, hostDir string
	res           fsops.Result
	calls         []fsopstest.Call
}

func (r applyRun) file(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(r.root, p))
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return string(b)
}

func (r applyRun) ran(t *testing.T, want string) {
	t.Helper()
	for _, c := range r.calls {
		if strings.Contains(c.Line(), want) {
			return
		}
	}
	t.Errorf("no command containing %q; ran %q", want, r.calls)
}

func contains(t *testing.T, what, got, want string) {
	t.Helper()
	if !strings.Contains(got, want) {
		t.Errorf("%s = %q, want it to contain %q", what, got, want)
	}
}

var applyCases = map[string]applyCase{
	"append_line": {again: true, check: func(t *testing.T, r applyRun) {
		contains(t, "/etc/environment", r.file(t, "/etc/environment"), "EDITOR=vim\n")
	}},
	"chmod": {again: true, check: func(t *testing.T, r applyRun) {
		fi, err := os.Stat(filepath.Join(r.root, "usr/local/bin/tool"))
		if err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("tool: %v, %v", fi, err)
		}
	}},
	"chown": {step: `chown: {path: /srv/data, owner: "1001:1001"}`, again: true, check: func(t *testing.T, r applyRun) {
		if uid, gid := owner(t, filepath.Join(r.root, "srv/data")); uid != 1001 || gid != 1001 {
			t.Errorf("owner %d:%d", uid, gid)
		}
	}},
	"copy_in": {check: func(t *testing.T, r applyRun) {
		contains(t, "copied file", r.file(t, "/opt/app/files/hello.txt"), "hello from the host")
	}},
	"copy_out": {again: true, check: func(t *testing.T, r applyRun) {
		b, err := os.ReadFile(filepath.Join(r.hostDir, "out", "os-release"))
		if err != nil || !strings.Contains(string(b), "ID=debian") {
			t.Errorf("copied out: %q, %v", b, err)
		}
	}},
	"cron": {again: true, check: func(t *testing.T, r applyRun) {
		contains(t, "/etc/cron.d/backup", r.file(t, "/etc/cron.d/backup"), "30 2 * * * root /usr/local/bin/backup")
	}},
	"delete": {again: true, check: func(t *testing.T, r applyRun) {
		if _, err := os.Lstat(filepath.Join(r.root, "root/hello")); !os.IsNotExist(err) {
			t.Errorf("/root/hello still there: %v", err)
		}
	}},
	"edit": {again: true, check: func(t *testing.T, r applyRun) {
		got := r.file(t, "/etc/ssh/sshd_config")
		contains(t, "sshd_config", got, "PermitRootLogin no\n")
		if strings.Contains(got, "PermitRootLogin yes") {
			t.Errorf("old line kept: %q", got)
		}
	}},
	"firstboot": {again: true, check: func(t *testing.T, r applyRun) {
		if !r.res.Changed {
			t.Error("first firstboot step reported ok")
		}
		var found bool
		filepath.WalkDir(r.root, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				if b, _ := os.ReadFile(p); strings.Contains(string(b), "ssh-keygen -A") {
					found = true
				}
			}
			return nil
		})
		if !found {
			t.Error("no file in the image runs the firstboot command")
		}
	}},
	"fstab": {again: true, check: func(t *testing.T, r applyRun) {
		contains(t, "/etc/fstab", r.file(t, "/etc/fstab"), "LABEL=data")
		contains(t, "/etc/fstab", r.file(t, "/etc/fstab"), "UUID=1234 / ext4")
	}},
	"hostname": {again: true, check: func(t *testing.T, r applyRun) {
		if got := r.file(t, "/etc/hostname"); got != "baked\n" {
			t.Errorf("/etc/hostname = %q", got)
		}
		contains(t, "/etc/hosts", r.file(t, "/etc/hosts"), "127.0.1.1\tbaked")
	}},
	"link": {again: true, check: func(t *testing.T, r applyRun) {
		if got, err := os.Readlink(filepath.Join(r.root, "etc/localtime")); err != nil || got != "/usr/share/zoneinfo/UTC" {
			t.Errorf("/etc/localtime -> %q, %v", got, err)
		}
	}},
	"machine_id_reset": {again: true, check: func(t *testing.T, r applyRun) {
		if got := r.file(t, "/etc/machine-id"); got != "" {
			t.Errorf("/etc/machine-id = %q", got)
		}
	}},
	"mkdir": {again: true, check: func(t *testing.T, r applyRun) {
		if fi, err := os.Stat(filepath.Join(r.root, "opt/app")); err != nil || !fi.IsDir() {
			t.Errorf("/opt/app: %v", err)
		}
	}},
	"move": {again: true, check: func(t *testing.T, r applyRun) {
		contains(t, "/etc/app.conf", r.file(t, "/etc/app.conf"), "dist")
	}},
	"install":   {handler: notInstalled, onceWhy: "the package database is faked, so a second run cannot see the first one; the VM tests check it", check: func(t *testing.T, r applyRun) { r.ran(t, "apt-get") }},
	"uninstall": {handler: installedPkgs, onceWhy: "the package database is faked, so a second run cannot see the first one; the VM tests check it", check: func(t *testing.T, r applyRun) { r.ran(t, "apt-get") }},
	"update":    {onceWhy: "the package database is faked, so a second run cannot see the first one; the VM tests check it", check: func(t *testing.T, r applyRun) { r.ran(t, "apt-get") }},
	"password": {setup: addOps, again: true, check: func(t *testing.T, r applyRun) {
		r.ran(t, "chpasswd")
		pw, err := os.ReadFile(filepath.Join(r.hostDir, "ops-password.txt"))
		if err != nil || len(strings.TrimSpace(string(pw))) < 12 {
			t.Fatalf("random password file: %q, %v", pw, err)
		}
		for _, c := range r.calls {
			if strings.Contains(c.Line(), strings.TrimSpace(string(pw))) {
				t.Errorf("the password is on a command line: %q", c.Line())
			}
		}
	}},
	"root_password": {again: true, check: func(t *testing.T, r applyRun) { r.ran(t, "chpasswd") }},
	"run":           {check: func(t *testing.T, r applyRun) { r.ran(t, "echo hello > /root/hello") }},
	"script":        {check: func(t *testing.T, r applyRun) { r.ran(t, "--fast") }},
	"selinux_relabel": {again: true, check: func(t *testing.T, r applyRun) {
		if _, err := os.Stat(filepath.Join(r.root, ".autorelabel")); err != nil {
			t.Errorf("/.autorelabel: %v", err)
		}
	}},
	"service": {step: `service: {name: fstrim.timer, enabled: true}`, again: true, check: func(t *testing.T, r applyRun) {
		if _, err := os.Lstat(filepath.Join(r.root, "etc/systemd/system/timers.target.wants/fstrim.timer")); err != nil {
			t.Errorf("not enabled: %v", err)
		}
	}},
	"ssh_inject": {again: true, check: func(t *testing.T, r applyRun) {
		contains(t, "authorized_keys", r.file(t, "/root/.ssh/authorized_keys"), testKey)
	}},
	"sysprep": {step: `sysprep: {keep: [/var/log/keep.log]}`, setup: plantTraces, again: true, check: func(t *testing.T, r applyRun) {
		if !r.res.Changed {
			t.Errorf("sysprep found nothing to clean: %s", r.res.Detail)
		}
		for _, p := range []string{"tmp/build.log", "etc/ssh/ssh_host_ed25519_key", "root/.bash_history", "var/log/syslog.1"} {
			if _, err := os.Lstat(filepath.Join(r.root, p)); !os.IsNotExist(err) {
				t.Errorf("%s is still there: %v", p, err)
			}
		}
		for p, want := range map[string]string{"/var/log/syslog": "", "/var/log/keep.log": "kept\n", "/etc/machine-id": ""} {
			if got := r.file(t, p); got != want {
				t.Errorf("%s = %q, want %q", p, got, want)
			}
		}
		contains(t, "first-boot script", r.file(t, fsops.FirstbootDir+"/scripts/0001-sysprep-ssh-hostkeys"), "ssh-keygen -A")
		contains(t, "detail", r.res.Detail, "logfiles: 1 removed, 1 truncated, 1 kept")
	}},
	"template": {again: true, check: func(t *testing.T, r applyRun) {
		if got := r.file(t, "/etc/site.conf"); got != "server_name web on debian\n" {
			t.Errorf("/etc/site.conf = %q", got)
		}
	}},
	"timezone": {again: true, check: func(t *testing.T, r applyRun) {
		if got, err := os.Readlink(filepath.Join(r.root, "etc/localtime")); err != nil || !strings.HasSuffix(got, "zoneinfo/Europe/Berlin") {
			t.Errorf("/etc/localtime -> %q, %v", got, err)
		}
	}},
	"touch": {again: true, check: func(t *testing.T, r applyRun) {
		if _, err := os.Stat(filepath.Join(r.root, "etc/cloud/cloud-init.disabled")); err != nil {
			t.Error(err)
		}
	}},
	"truncate": {again: true, check: func(t *testing.T, r applyRun) {
		if got := r.file(t, "/etc/machine-id"); got != "" {
			t.Errorf("/etc/machine-id = %q", got)
		}
	}},
	"repo": {again: true, check: func(t *testing.T, r applyRun) {
		src := r.file(t, "/etc/apt/sources.list.d/example.sources")
		contains(t, "example.sources", src, "URIs: https://pkgs.example.com/debian\nSuites: bookworm\nComponents: main\nSigned-By: /etc/apt/keyrings/example.asc\n")
		contains(t, "keyring", r.file(t, "/etc/apt/keyrings/example.asc"), "-----BEGIN PGP PUBLIC KEY BLOCK-----")
	}},
	"upload": {again: true, check: func(t *testing.T, r applyRun) {
		contains(t, "/etc/app/app.conf", r.file(t, "/etc/app/app.conf"), "listen 8080")
	}},
	"user": {step: `user: {name: ops, shell: /bin/bash, ssh_authorized_keys: ["` + testKey + `"]}`, again: true, check: func(t *testing.T, r applyRun) {
		contains(t, "authorized_keys", r.file(t, "/home/ops/.ssh/authorized_keys"), testKey)
		r.ran(t, "useradd")
	}},
	"write": {again: true, check: func(t *testing.T, r applyRun) {
		if got := r.file(t, "/etc/motd"); got != "Welcome\n" {
			t.Errorf("/etc/motd = %q", got)
		}
	}},
}

// addOps adds the user ops to the image.
func addOps(t *testing.T, root string) {
	for file, line := range map[string]string{"etc/passwd": "ops:x:1000:1000::/home/ops:/bin/bash\n",
		"etc/group": "ops:x:1000:\n", "etc/shadow": "ops:!:19000:0:99999:7:::\n"} {
		f, err := os.OpenFile(filepath.Join(root, file), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(line)
		f.Close()
	}
}

// plantTraces leaves what sysprep removes: a temporary file, an SSH host
// key (and sshd), a shell history, logs.
func plantTraces(t *testing.T, root string) {
	writeTree(t, root, map[string]string{
		"tmp/build.log": "x", "etc/ssh/ssh_host_ed25519_key": "key", "usr/sbin/sshd": "", "usr/bin/ssh-keygen": "",
		"root/.bash_history": "ls\n", "var/log/syslog": "boot\n", "var/log/syslog.1": "old\n", "var/log/keep.log": "kept\n",
	})
}

// notInstalled answers package queries with "nothing installed".
func notInstalled(c fsopstest.Call) fsopstest.Reply {
	if strings.Contains(c.Line(), "dpkg-query") {
		return fsopstest.Reply{RC: 1}
	}
	return fsopstest.Reply{}
}

// installedPkgs answers package queries with "all installed".
func installedPkgs(c fsopstest.Call) fsopstest.Reply {
	if strings.Contains(c.Line(), "dpkg-query") {
		return fsopstest.Reply{Stdout: "install ok installed\n"}
	}
	return fsopstest.Reply{}
}

// imageTree is a small Debian-like root for the fake session.
var imageTree = map[string]string{
	"etc/os-release":                     "ID=debian\nVERSION_ID=12\n",
	"etc/passwd":                         "root:x:0:0:root:/root:/bin/bash\nwww-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n",
	"etc/group":                          "root:x:0:\nsudo:x:27:\nwww-data:x:33:\n",
	"etc/shadow":                         "root:*:19000:0:99999:7:::\n",
	"etc/hosts":                          "127.0.0.1\tlocalhost\n",
	"etc/hostname":                       "old\n",
	"etc/fstab":                          "UUID=1234 / ext4 defaults 0 1\n",
	"etc/machine-id":                     "0123456789abcdef0123456789abcdef\n",
	"etc/ssh/sshd_config":                "#PermitRootLogin yes\nPort 22\n",
	"etc/app.conf.dist":                  "dist\n",
	"etc/selinux/config":                 "SELINUX=enforcing\n",
	"usr/local/bin/tool":                 "#!/bin/sh\n",
	"usr/share/zoneinfo/UTC":             "TZif",
	"usr/share/zoneinfo/Europe/Berlin":   "TZif",
	"lib/systemd/system/fstrim.timer":    "[Timer]\nOnCalendar=weekly\n[Install]\nWantedBy=timers.target\n",
	"root/hello":                         "hello\n",
	"srv/data/.keep":                     "",
	"bin/sh":                             "",
	"usr/share/zoneinfo/Etc/placeholder": "",
	"root/.ssh/.keep":                    "",
	"etc/cloud/.keep":                    "",
	"etc/app/.keep":                      "",
	"bin/bash":                           "",
	"var/lib/dpkg/status":                "",
	"usr/bin/apt-get":                    "",
	"usr/sbin/chpasswd":                  "",
	"usr/sbin/useradd":                   "",
}

// hostTree is the recipe's directory: the host files the examples name.
var hostTree = map[string]string{
	"files/hello.txt":          "hello from the host\n",
	"setup.sh":                 "#!/bin/sh\necho set up \"$@\"\n",
	"id_ed25519.pub":           testKey + "\n",
	"templates/site.conf.tmpl": "server_name {{ .vars.site }} on {{ .os.id }}\n",
	"app.conf":                 "listen 8080\n",
	"example.asc":              "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmDMEZQAAABYJKwYBBAHaRw8BAQdA\n-----END PGP PUBLIC KEY BLOCK-----\n",
	"out/.keep":                "",
}

func writeTree(t *testing.T, dir string, tree map[string]string) {
	t.Helper()
	for p, content := range tree {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// exampleRecipe is a recipe of one step, in hostDir.
func exampleRecipe(t *testing.T, hostDir, step string) *recipes.Recipe {
	t.Helper()
	src := "vars:\n  site: web\nsteps:\n  - " + step + "\n"
	rec, err := recipes.Parse("example.yaml", []byte(src), hostDir)
	if err != nil {
		t.Fatalf("%s\n%v", src, err)
	}
	return rec
}

// TestApplyEveryKind carries out every kind on the fake session.
func TestApplyEveryKind(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the in-process agent chowns what it writes: run as root")
	}
	facts := recipes.Facts{OSID: "debian", VersionID: "12", Family: "debian", PackageManager: "apt", Arch: "x86_64"}
	for _, k := range All() {
		t.Run(k.Name, func(t *testing.T) {
			tc, ok := applyCases[k.Name]
			if !ok {
				t.Fatalf("no apply case for kind %s", k.Name)
			}
			root, hostDir := t.TempDir(), t.TempDir()
			writeTree(t, root, imageTree)
			writeTree(t, hostDir, hostTree)
			if err := os.Chmod(filepath.Join(root, "usr/local/bin/tool"), 0o644); err != nil {
				t.Fatal(err)
			}
			if tc.setup != nil {
				tc.setup(t, root)
			}
			step := tc.step
			if step == "" {
				step = k.Example
			}
			rec := exampleRecipe(t, hostDir, step)
			sess := fsopstest.New(t, root, tc.handler)
			apply := func() fsops.Result {
				st := rec.Steps[0]
				op, err := rec.Resolve(st, facts)
				if err != nil {
					t.Fatal(err)
				}
				st.Op = op
				env := Env{Session: sess, Facts: facts, Data: rec.Data(facts), Network: k.NeedsNetwork}
				res, err := Apply(context.Background(), env, st)
				if err != nil {
					t.Fatalf("apply %s: %v (commands: %q)", step, err, sess.Calls())
				}
				return res
			}
			res := apply()
			tc.check(t, applyRun{root: root, hostDir: hostDir, res: res, calls: sess.Calls()})
			if tc.again {
				if res2 := apply(); res2.Changed {
					t.Errorf("second apply reported changed (%s)", res2.Detail)
				}
			}
		})
	}
}

func owner(t *testing.T, p string) (int, int) {
	t.Helper()
	uid, gid, err := statOwner(p)
	if err != nil {
		t.Fatal(err)
	}
	return uid, gid
}
