package main

import (
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/imgbake/imgbake/testimages"
)

// fileStepsRecipe uses every file step kind: append_line, edit, upload,
// chmod, chown, move, link, touch, truncate and script. Every step is
// idempotent, so a second run with --force must change nothing.
const fileStepsRecipe = `name: file steps
steps:
  - append_line: {path: /etc/imgbake-new.conf, line: "EDITOR=vim"}
  - append_line: {path: /etc/imgbake-new.conf, line: "PAGER=less"}
  - append_line: {path: /etc/hosts, line: "10.0.0.5 db.internal"}
  - name: append through the os-release symlink
    append_line: {path: /etc/os-release, line: "IMGBAKE_BAKED=1"}
  - edit: {path: /etc/login.defs, regexp: '^UMASK\s+\d+$', replace: "UMASK\t\t027"}
  - name: multiline edit
    edit: {path: /etc/login.defs, regexp: '(?m)^PASS_MAX_DAYS\s+99999\n', replace: "PASS_MAX_DAYS\t90\n", multiline: true}
  - upload: {src: ./tool.sh, dest: /usr/local/bin/tool, mode: "0750", owner: "root:staff"}
  - upload: {src: ./data.txt, dest: /srv/data.txt}
  - chmod: {path: /srv/data.txt, mode: "0640"}
  - chown: {path: /srv/data.txt, owner: www-data}
  - move: {src: /etc/issue.net, dest: /etc/issue.net.orig}
  - link: {target: /usr/share/zoneinfo/Europe/Berlin, path: /etc/localtime}
  - link: {target: login.defs, path: /etc/imgbake-link}
  - touch: /etc/cloud-init.disabled
  - name: touch an existing file
    touch: /etc/hostname
  - truncate: /etc/motd
  - truncate: /etc/machine-id
  - script: {src: ./setup.sh, args: [one, "two words"]}
    changed_when: stdout != ""
`

// setup.sh is idempotent and says (on stdout) when it did something.
const fileStepsScript = `#!/bin/bash
set -eu
out=/root/script-out
[ -e "$out" ] && exit 0
{ echo "bash=${BASH_VERSION:+yes}"; echo "args=$#:$1|$2"; echo "uid=$(id -u)"; echo "self=$0"; } > "$out"
echo did it
`

// stepLine matches one progress line: index, title, status.
var stepLine = regexp.MustCompile(`(?m)^\[\s*(\d+)/\d+\] (.*?)\s+(ok|changed|skipped|failed \(ignored\)|failed)\s+[\d.]+m?s`)

func stepStatuses(t *testing.T, stdout string) map[int]string {
	t.Helper()
	m := map[int]string{}
	for _, sm := range stepLine.FindAllStringSubmatch(stdout, -1) {
		i, _ := strconv.Atoi(sm[1])
		m[i] = sm[3]
	}
	return m
}

// TestFileSteps runs every file step kind in one appliance boot on the raw
// ext4 image, checks the results with debugfs, then runs the recipe again
// with --force and expects every step to report ok.
func TestFileSteps(t *testing.T) {
	vmTests(t)
	tmp := privateTmp(t)
	info := testimages.InfoOf(t, testimages.NoPart)
	disk := testimages.Fresh(t, testimages.NoPart)
	recipe := writeRecipe(t, fileStepsRecipe)
	dir := filepath.Dir(recipe)
	must(t, os.WriteFile(filepath.Join(dir, "tool.sh"), []byte("#!/bin/sh\necho tool\n"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "data.txt"), []byte("some data\n"), 0o604))
	must(t, os.WriteFile(filepath.Join(dir, "setup.sh"), []byte(fileStepsScript), 0o644)) // not executable: the shebang decides
	part := info.RootPartition

	before, err := testimages.ReadFiles(t, disk, info.Format, part, "/etc/issue.net", "/etc/hostname", "/etc/hosts", "/usr/lib/os-release")
	must(t, err)
	for _, p := range []string{"/etc/issue.net", "/etc/hostname", "/etc/hosts", "/usr/lib/os-release"} {
		if len(before[p]) == 0 {
			t.Fatalf("test image lacks %s", p)
		}
	}
	motdBefore, err := testimages.Stat(t, disk, info.Format, part, "/etc/motd")
	must(t, err)

	r := imgbake(t, "run", "-a", disk, recipe)
	if r.code != 0 {
		t.Fatalf("run failed: %s", r)
	}
	st := stepStatuses(t, r.stdout)
	if len(st) != 18 {
		t.Fatalf("want 18 step lines, got %d:\n%s", len(st), r.stdout)
	}
	for i := 1; i <= 18; i++ {
		want := "changed"
		if i == 15 { // touch of an existing file
			want = "ok"
		}
		if st[i] != want {
			t.Errorf("first run: step %d is %s, want %s:\n%s", i, st[i], want, r.stdout)
		}
	}

	// The image, read back with debugfs.
	files, err := testimages.ReadFiles(t, disk, info.Format, part,
		"/etc/imgbake-new.conf", "/etc/hosts", "/usr/lib/os-release", "/etc/login.defs", "/usr/local/bin/tool",
		"/srv/data.txt", "/etc/issue.net", "/etc/issue.net.orig", "/etc/cloud-init.disabled", "/etc/hostname",
		"/etc/motd", "/etc/machine-id", "/root/script-out")
	must(t, err)
	want := map[string]string{
		"/etc/imgbake-new.conf":    "EDITOR=vim\nPAGER=less\n",
		"/etc/hosts":               strings.TrimSuffix(string(before["/etc/hosts"]), "\n") + "\n10.0.0.5 db.internal\n",
		"/usr/lib/os-release":      strings.TrimSuffix(string(before["/usr/lib/os-release"]), "\n") + "\nIMGBAKE_BAKED=1\n",
		"/usr/local/bin/tool":      "#!/bin/sh\necho tool\n",
		"/srv/data.txt":            "some data\n",
		"/etc/issue.net.orig":      string(before["/etc/issue.net"]),
		"/etc/cloud-init.disabled": "",
		"/etc/hostname":            string(before["/etc/hostname"]),
		"/etc/motd":                "",
		"/etc/machine-id":          "",
	}
	for p, w := range want {
		if got, ok := files[p]; !ok || string(got) != w {
			t.Errorf("%s in the image = %q (present %v), want %q", p, got, ok, w)
		}
	}
	if _, ok := files["/etc/issue.net"]; ok {
		t.Error("/etc/issue.net still exists after move")
	}
	defs := string(files["/etc/login.defs"])
	if !strings.Contains(defs, "\nUMASK\t\t027\n") || strings.Contains(defs, "\nUMASK\t\t022") {
		t.Errorf("login.defs UMASK not edited:\n%s", defs)
	}
	if !strings.Contains(defs, "\nPASS_MAX_DAYS\t90\n") || strings.Contains(defs, "\nPASS_MAX_DAYS\t99999") {
		t.Errorf("login.defs PASS_MAX_DAYS not edited:\n%s", defs)
	}
	out := string(files["/root/script-out"])
	for _, w := range []string{"bash=yes\n", "args=2:one|two words\n", "uid=0\n", "self=/tmp/.imgbake-script-"} {
		if !strings.Contains(out, w) {
			t.Errorf("script output lacks %q:\n%s", w, out)
		}
	}
	// The script and its private directory are gone.
	if _, self, ok := strings.Cut(out, "self="); ok {
		scriptDir := path.Dir(strings.TrimSpace(self))
		if fi, err := testimages.Stat(t, disk, info.Format, part, scriptDir); err == nil {
			t.Errorf("script directory %s left in the image: %+v", scriptDir, fi)
		}
	}

	type attrs struct {
		perm     uint32
		uid, gid uint32
		link     string // symlink target, "" for a regular file
	}
	for p, w := range map[string]attrs{
		"/etc/imgbake-new.conf":    {perm: 0o644},
		"/usr/local/bin/tool":      {perm: 0o750, gid: 50},
		"/srv/data.txt":            {perm: 0o640, uid: 33, gid: 33},
		"/etc/motd":                {perm: motdBefore.Perm(), uid: motdBefore.UID, gid: motdBefore.GID},
		"/etc/os-release":          {perm: 0o777, link: "../usr/lib/os-release"},
		"/etc/localtime":           {perm: 0o777, link: "/usr/share/zoneinfo/Europe/Berlin"},
		"/etc/imgbake-link":        {perm: 0o777, link: "login.defs"},
		"/etc/cloud-init.disabled": {perm: 0o644},
		"/etc/machine-id":          {perm: 0o644},
	} {
		fi, err := testimages.Stat(t, disk, info.Format, part, p)
		if err != nil {
			t.Errorf("stat %s: %v", p, err)
			continue
		}
		if fi.IsSymlink != (w.link != "") || fi.Target != w.link || (w.link == "" && !fi.IsRegular()) {
			t.Errorf("%s: symlink %v -> %q, want link %q", p, fi.IsSymlink, fi.Target, w.link)
		}
		if w.link == "" && (fi.Perm() != w.perm || fi.UID != w.uid || fi.GID != w.gid) {
			t.Errorf("%s: mode %o owner %d:%d, want %o %d:%d", p, fi.Perm(), fi.UID, fi.GID, w.perm, w.uid, w.gid)
		}
	}

	// Again with --force: every step runs and none changes anything.
	r = imgbake(t, "run", "--force", "-a", disk, recipe)
	if r.code != 0 {
		t.Fatalf("second run failed: %s", r)
	}
	st = stepStatuses(t, r.stdout)
	if len(st) != 18 {
		t.Fatalf("second run: want 18 step lines, got %d:\n%s", len(st), r.stdout)
	}
	for i := 1; i <= 18; i++ {
		if st[i] != "ok" {
			t.Errorf("second run: step %d is %s, want ok", i, st[i])
		}
	}
	if !regexp.MustCompile(`\b18 ok, 0 changed`).MatchString(r.stdout) {
		t.Errorf("second run summary is not 18 ok, 0 changed:\n%s", r.stdout)
	}
	if t.Failed() {
		t.Logf("second run:\n%s", r.stdout)
	}
	noLeftovers(t, tmp)
}

// TestScriptFailures: a failing script reports its rc and stderr like run,
// the step timeout kills a slow one, and the image is left unchanged.
func TestScriptFailures(t *testing.T) {
	vmTests(t)
	tmp := privateTmp(t)
	disk := testimages.Fresh(t, testimages.NoPart)
	before := sha256File(t, disk)
	recipe := writeRecipe(t, `name: script failures
steps:
  - name: failing script
    script: {src: ./fail.sh, args: [x]}
    ignore_errors: true
  - name: slow script
    script: ./slow.sh
    timeout: 3s
  - touch: /etc/never
`)
	dir := filepath.Dir(recipe)
	must(t, os.WriteFile(filepath.Join(dir, "fail.sh"), []byte("#!/bin/sh\necho \"bad thing happened to $1\" >&2\nexit 3\n"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "slow.sh"), []byte("sleep 600\n"), 0o755)) // no shebang: /bin/sh
	r := imgbake(t, "run", "-a", disk, recipe)
	if r.code != ExitStepFailed {
		t.Fatalf("exit %d, want %d\n%s", r.code, ExitStepFailed, r)
	}
	st := stepStatuses(t, r.stdout)
	if st[1] != "failed (ignored)" || st[2] != "failed" || st[3] != "" {
		t.Errorf("statuses %v:\n%s", st, r)
	}
	for _, w := range []string{"rc 3", "stderr: bad thing happened to x", "timed out after 3s"} {
		if !strings.Contains(r.stdout+r.stderr, w) {
			t.Errorf("output lacks %q:\n%s", w, r)
		}
	}
	if sha256File(t, disk) != before {
		t.Fatal("a failed run changed the image")
	}
	noLeftovers(t, tmp)
}
