package fsops_test

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/fsops/fsopstest"
)

// sysprepBase is the image every sysprep case starts from: a Debian-like
// root with users whose homes hold histories, and sshd.
var sysprepBase = map[string]string{
	"etc/os-release": "ID=debian\nVERSION_ID=12\n",
	"etc/passwd": "root:x:0:0:root:/root:/bin/bash\nwww-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n" +
		"ops:x:1000:1000::/home/ops:/bin/bash\nsvc:x:999:999::/srv/svc:/bin/sh\n",
	"etc/group":           "root:x:0:\n",
	"etc/shadow":          "root:*:19000:0:99999:7:::\n",
	"etc/hostname":        "web01\n",
	"etc/ssh/sshd_config": "Port 22\n",
	"usr/sbin/sshd":       "#!/bin/sh\n",
	"usr/bin/ssh-keygen":  "#!/bin/sh\n",
	"home/ops/.profile":   "# ops\n",
	"srv/svc/.keep":       "",
	"var/www/.keep":       "",
}

// A sysprepCase plants traces for one operation and says what must be
// gone and what must stay (with its content) after it ran.
type sysprepCase struct {
	op    string
	plant map[string]string // path → content
	links map[string]string // path → symlink target
	gone  []string
	stays map[string]string // path → content afterwards ("" = emptied); a trailing / is a directory
}

var sysprepCases = []sysprepCase{
	{op: "bash-history",
		plant: map[string]string{"root/.bash_history": "ls\n", "home/ops/.bash_history": "sudo -i\n", "srv/svc/.bash_history": "x\n",
			"home/guest/.bash_history": "y\n", "var/www/.bash_history": "a nologin user's\n"},
		gone:  []string{"/root/.bash_history", "/home/ops/.bash_history", "/srv/svc/.bash_history", "/home/guest/.bash_history"},
		stays: map[string]string{"/home/ops/.profile": "# ops\n", "/var/www/.bash_history": "a nologin user's\n"}},
	{op: "cloud-init-state",
		plant: map[string]string{"var/lib/cloud/instances/i-1/obj.pkl": "x", "var/lib/cloud/data/status.json": "{}",
			"var/lib/cloud/seed/nocloud/meta-data": "instance-id: golden\n"},
		links: map[string]string{"var/lib/cloud/instance": "/var/lib/cloud/instances/i-1"},
		gone:  []string{"/var/lib/cloud/instances", "/var/lib/cloud/data", "/var/lib/cloud/instance"},
		stays: map[string]string{"/var/lib/cloud/seed/nocloud/meta-data": "instance-id: golden\n"}},
	{op: "cron-spool",
		plant: map[string]string{"var/spool/cron/crontabs/ops": "* * * * * true\n", "var/spool/cron/atjobs/a00001": "job",
			"var/spool/cron/atjobs/.SEQ": "00002\n", "var/spool/cron/atspool/.keep-me-not": "x"},
		gone:  []string{"/var/spool/cron/crontabs/ops", "/var/spool/cron/atjobs/a00001", "/var/spool/cron/atspool/.keep-me-not"},
		stays: map[string]string{"/var/spool/cron/atjobs/.SEQ": "00000\n", "/var/spool/cron/crontabs/": ""}},
	{op: "dbus-machine-id",
		plant: map[string]string{"var/lib/dbus/machine-id": "0123456789abcdef0123456789abcdef\n"},
		gone:  []string{"/var/lib/dbus/machine-id"}},
	{op: "dhcp-client-state",
		plant: map[string]string{"var/lib/dhcp/dhclient.eth0.leases": "lease {}", "var/lib/dhcp/dhcpd.leases": "server",
			"var/lib/dhclient/dhclient.leases": "lease {}", "var/lib/NetworkManager/internal-1-eth0.lease": "x",
			"var/lib/dhcpcd/eth0.lease": "x", "var/lib/wicked/lease-eth0-dhcp-ipv4.xml": "x"},
		gone: []string{"/var/lib/dhcp/dhclient.eth0.leases", "/var/lib/dhclient/dhclient.leases",
			"/var/lib/NetworkManager/internal-1-eth0.lease", "/var/lib/dhcpcd/eth0.lease", "/var/lib/wicked/lease-eth0-dhcp-ipv4.xml"},
		stays: map[string]string{"/var/lib/dhcp/dhcpd.leases": "server"}},
	{op: "etc-hosts",
		plant: map[string]string{"etc/hosts": "127.0.0.1\tlocalhost\n127.0.1.1\tweb01.example.com web01\n10.0.0.5 db web01-backup\n"},
		stays: map[string]string{"/etc/hosts": "127.0.0.1\tlocalhost\n10.0.0.5 db web01-backup\n"}},
	{op: "imgbake-state",
		plant: map[string]string{"var/lib/imgbake/state.json": "{}\n"},
		gone:  []string{fsops.StatePath}},
	{op: "logfiles",
		plant: map[string]string{"var/log/syslog": "boot\n", "var/log/apt/history.log": "install\n", "var/log/wtmp": "x",
			"var/log/syslog.1": "old", "var/log/syslog.2.gz": "old", "var/log/messages-20240101": "old",
			"var/log/journal/0123456789abcdef0123456789abcdef/system.journal": "LPKSHHRH", "var/log/empty.log": ""},
		gone: []string{"/var/log/syslog.1", "/var/log/syslog.2.gz", "/var/log/messages-20240101",
			"/var/log/journal/0123456789abcdef0123456789abcdef"},
		stays: map[string]string{"/var/log/syslog": "", "/var/log/apt/history.log": "", "/var/log/wtmp": "", "/var/log/empty.log": "",
			"/var/log/journal/": ""}},
	{op: "lvm-system-devices",
		plant: map[string]string{"etc/lvm/devices/system.devices": "IDTYPE=sys_wwid\n", "etc/lvm/lvm.conf": "# conf\n"},
		gone:  []string{"/etc/lvm/devices/system.devices"},
		stays: map[string]string{"/etc/lvm/lvm.conf": "# conf\n"}},
	{op: "machine-id",
		plant: map[string]string{"etc/machine-id": "0123456789abcdef0123456789abcdef\n"},
		stays: map[string]string{"/etc/machine-id": ""}},
	{op: "mail-spool",
		plant: map[string]string{"var/mail/ops": "From root\n"},
		links: map[string]string{"var/spool/mail": "../mail"},
		gone:  []string{"/var/mail/ops"},
		stays: map[string]string{"/var/mail/": ""}},
	{op: "net-hwaddr",
		plant: map[string]string{
			"etc/sysconfig/network-scripts/ifcfg-eth0":                 "DEVICE=eth0\nHWADDR=52:54:00:12:34:56\nBOOTPROTO=dhcp\n",
			"etc/NetworkManager/system-connections/Wired.nmconnection": "[connection]\nid=Wired\n[ethernet]\nmac-address=52:54:00:12:34:56\n",
			"etc/netplan/50-cloud-init.yaml":                           "network:\n    ethernets:\n        ens3:\n            dhcp4: true\n            match:\n                macaddress: 52:54:00:12:34:56\n            set-name: ens3\n    version: 2\n",
		},
		stays: map[string]string{
			"/etc/sysconfig/network-scripts/ifcfg-eth0":                 "DEVICE=eth0\nBOOTPROTO=dhcp\n",
			"/etc/NetworkManager/system-connections/Wired.nmconnection": "[connection]\nid=Wired\n[ethernet]\n",
			"/etc/netplan/50-cloud-init.yaml":                           "network:\n    ethernets:\n        ens3:\n            dhcp4: true\n    version: 2\n",
		}},
	{op: "package-lists",
		plant: map[string]string{"var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease": "x", "var/lib/apt/lists/lock": "",
			"var/lib/apt/lists/partial/x": "x", "var/lib/pacman/sync/core.db": "x"},
		gone: []string{"/var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease", "/var/lib/apt/lists/partial/x",
			"/var/lib/pacman/sync/core.db"},
		stays: map[string]string{"/var/lib/apt/lists/lock": "", "/var/lib/apt/lists/partial/": ""}},
	{op: "package-manager-cache",
		plant: map[string]string{"var/cache/apt/archives/nginx_1.22_amd64.deb": "deb", "var/cache/apt/archives/lock": "",
			"var/cache/apt/pkgcache.bin": "x", "var/cache/dnf/fedora-1/repodata/repomd.xml": "x", "var/cache/zypp/raw/repo/x": "x",
			"var/cache/pacman/pkg/nginx.pkg.tar.zst": "x", "var/cache/apk/APKINDEX.tar.gz": "x", "var/cache/man/index.db": "x"},
		gone: []string{"/var/cache/apt/archives/nginx_1.22_amd64.deb", "/var/cache/apt/pkgcache.bin", "/var/cache/dnf/fedora-1/repodata/repomd.xml",
			"/var/cache/zypp/raw/repo/x", "/var/cache/pacman/pkg/nginx.pkg.tar.zst", "/var/cache/apk/APKINDEX.tar.gz"},
		stays: map[string]string{"/var/cache/apt/archives/lock": "", "/var/cache/apt/archives/": "", "/var/cache/man/index.db": "x"}},
	{op: "random-seed",
		plant: map[string]string{"var/lib/systemd/random-seed": "seed", "var/lib/urandom/random-seed": "seed"},
		gone:  []string{"/var/lib/systemd/random-seed", "/var/lib/urandom/random-seed"}},
	{op: "rpm-db",
		plant: map[string]string{"var/lib/rpm/__db.001": "x", "var/lib/rpm/rpmdb.sqlite": "db"},
		gone:  []string{"/var/lib/rpm/__db.001"},
		stays: map[string]string{"/var/lib/rpm/rpmdb.sqlite": "db"}},
	{op: "shell-history",
		plant: map[string]string{"root/.python_history": "x", "home/ops/.local/share/fish/fish_history": "x", "root/.lesshst": "x",
			"srv/svc/.ash_history": "x"},
		gone: []string{"/root/.python_history", "/home/ops/.local/share/fish/fish_history", "/root/.lesshst", "/srv/svc/.ash_history"}},
	{op: "ssh-hostkeys",
		plant: map[string]string{"etc/ssh/ssh_host_ed25519_key": "private", "etc/ssh/ssh_host_ed25519_key.pub": "public",
			"etc/ssh/ssh_host_rsa_key": "private", "etc/ssh/ssh_host_rsa_key-cert.pub": "cert"},
		gone: []string{"/etc/ssh/ssh_host_ed25519_key", "/etc/ssh/ssh_host_ed25519_key.pub", "/etc/ssh/ssh_host_rsa_key",
			"/etc/ssh/ssh_host_rsa_key-cert.pub"},
		stays: map[string]string{"/etc/ssh/sshd_config": "Port 22\n"}},
	{op: "tmp-files",
		plant: map[string]string{"tmp/a": "x", "tmp/.hidden": "x", "tmp/dir/b": "x", "var/tmp/c": "x"},
		gone:  []string{"/tmp/a", "/tmp/.hidden", "/tmp/dir", "/var/tmp/c"},
		stays: map[string]string{"/tmp/": "", "/var/tmp/": ""}},
	{op: "udev-persistent-net",
		plant: map[string]string{"etc/udev/rules.d/70-persistent-net.rules": "SUBSYSTEM==\"net\"\n", "etc/udev/rules.d/99-local.rules": "# local\n"},
		gone:  []string{"/etc/udev/rules.d/70-persistent-net.rules"},
		stays: map[string]string{"/etc/udev/rules.d/99-local.rules": "# local\n"}},
	{op: "zsh-history",
		plant: map[string]string{"root/.zsh_history": "x", "home/ops/.zhistory": "x"},
		gone:  []string{"/root/.zsh_history", "/home/ops/.zhistory"}},
}

func plantTree(t *testing.T, root string, files, links map[string]string) {
	t.Helper()
	for p, content := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	for p, target := range links {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, full); err != nil {
			t.Fatal(err)
		}
	}
}

func (c sysprepCase) check(t *testing.T, root string) {
	t.Helper()
	for _, p := range c.gone {
		if _, err := os.Lstat(filepath.Join(root, p)); !os.IsNotExist(err) {
			t.Errorf("%s: %s is still there (%v)", c.op, p, err)
		}
	}
	for p, want := range c.stays {
		if dir, ok := strings.CutSuffix(p, "/"); ok {
			if fi, err := os.Lstat(filepath.Join(root, dir)); err != nil || !fi.IsDir() {
				t.Errorf("%s: directory %s is gone (%v)", c.op, dir, err)
			}
			continue
		}
		got, err := os.ReadFile(filepath.Join(root, p))
		if err != nil || string(got) != want {
			t.Errorf("%s: %s = %q (%v), want %q", c.op, p, got, err, want)
		}
	}
}

func sysprep(t *testing.T, s fsops.Session, o fsops.SysprepOptions) fsops.SysprepResult {
	t.Helper()
	res, err := fsops.Sysprep(context.Background(), s, o)
	if err != nil {
		t.Fatalf("sysprep %v: %v", o.Operations, err)
	}
	return res
}

// TestSysprepOperations runs each operation alone on an image holding its
// traces, then again: the second run finds nothing to clean.
func TestSysprepOperations(t *testing.T) {
	covered := map[string]bool{}
	for _, c := range sysprepCases {
		covered[c.op] = true
		t.Run(c.op, func(t *testing.T) {
			root := t.TempDir()
			plantTree(t, root, sysprepBase, nil)
			plantTree(t, root, c.plant, c.links)
			s := fsopstest.New(t, root, nil)
			o := fsops.SysprepOptions{Operations: []string{c.op}}
			res := sysprep(t, s, o)
			if !res.Changed || len(res.Done) != 1 || res.Done[0].Operation != c.op {
				t.Errorf("first run: changed %v, done %+v", res.Changed, res.Done)
			}
			c.check(t, root)
			if again := sysprep(t, s, o); again.Changed {
				t.Errorf("second run changed the image: %s", again.Detail)
			}
		})
	}
	for _, op := range fsops.SysprepOperations {
		if !covered[op.Name] {
			t.Errorf("operation %s has no case in sysprepCases", op.Name)
		}
	}
}

// TestSysprepDefaults plants every trace at once and runs the default
// set: the default operations' traces go, the opt-in ones' stay; the
// first-boot hook for new SSH keys is installed; no command but the
// firstboot machinery's ln and find runs in the image; a second run is
// unchanged.
func TestSysprepDefaults(t *testing.T) {
	root := t.TempDir()
	plantTree(t, root, sysprepBase, nil)
	var optIn []sysprepCase
	for _, c := range sysprepCases {
		plantTree(t, root, c.plant, c.links)
		if op, _ := fsops.LookupSysprepOperation(c.op); !op.Default {
			optIn = append(optIn, c)
		}
	}
	if len(optIn) != 2 {
		t.Fatalf("opt-in operations: %v, want cron-spool and imgbake-state", optIn)
	}
	s := fsopstest.New(t, root, nil)
	res := sysprep(t, s, fsops.SysprepOptions{})
	var done []string
	for _, d := range res.Done {
		done = append(done, d.Operation)
	}
	if want := fsops.DefaultSysprepOperations(); !reflect.DeepEqual(done, want) {
		t.Errorf("operations that did something: %v, want every default one: %v", done, want)
	}
	for _, c := range sysprepCases {
		if slices.ContainsFunc(optIn, func(o sysprepCase) bool { return o.op == c.op }) {
			for p, content := range c.plant {
				if got, err := os.ReadFile(filepath.Join(root, p)); err != nil || string(got) != content {
					t.Errorf("opt-in %s: %s changed by the defaults: %q, %v", c.op, p, got, err)
				}
			}
			continue
		}
		c.check(t, root)
	}
	script, err := os.ReadFile(filepath.Join(root, fsops.FirstbootDir, "scripts/0001-sysprep-ssh-hostkeys"))
	if err != nil || !strings.Contains(string(script), "ssh-keygen -A") {
		t.Errorf("first-boot key generation: %q, %v", script, err)
	}
	if _, err := os.Lstat(filepath.Join(root, "etc/systemd/system/multi-user.target.wants", fsops.FirstbootUnit)); err != nil {
		t.Errorf("firstboot unit not enabled: %v", err)
	}
	for _, c := range s.Calls() {
		if c.Shell != "" || (c.Argv[0] != "ln" && c.Argv[0] != "find") {
			t.Errorf("sysprep ran %q in the image", c.Line())
		}
	}
	if again := sysprep(t, s, fsops.SysprepOptions{}); again.Changed || !strings.HasPrefix(again.Detail, "nothing to clean") {
		t.Errorf("second run: changed %v: %s", again.Changed, again.Detail)
	}
}

// TestSysprepSSHHostKeys: without sshd no hook is installed; a hook that
// already ran (the image was booted, then sysprepped again) is re-armed.
func TestSysprepSSHHostKeys(t *testing.T) {
	root := t.TempDir()
	base := maps.Clone(sysprepBase)
	delete(base, "usr/sbin/sshd")
	plantTree(t, root, base, nil)
	plantTree(t, root, map[string]string{"etc/ssh/ssh_host_ed25519_key": "k"}, nil)
	s := fsopstest.New(t, root, nil)
	ssh := fsops.SysprepOptions{Operations: []string{"ssh-hostkeys"}}
	if res := sysprep(t, s, ssh); res.Detail != "ssh-hostkeys: 1 removed" {
		t.Errorf("without sshd: %s", res.Detail)
	}
	if _, err := os.Stat(filepath.Join(root, fsops.FirstbootDir)); !os.IsNotExist(err) {
		t.Errorf("a first-boot hook without sshd: %v", err)
	}
	if len(s.Calls()) != 0 {
		t.Errorf("commands ran: %q", s.Calls())
	}

	plantTree(t, root, map[string]string{"usr/sbin/sshd": "#!/bin/sh\n"}, nil)
	sysprep(t, s, ssh)
	pending := filepath.Join(root, fsops.FirstbootDir, "scripts/0001-sysprep-ssh-hostkeys")
	ran := filepath.Join(root, fsops.FirstbootDir, "scripts-done/0001-sysprep-ssh-hostkeys")
	if err := os.Rename(pending, ran); err != nil { // what the first boot does
		t.Fatal(err)
	}
	plantTree(t, root, map[string]string{"etc/ssh/ssh_host_ed25519_key": "booted machine's key"}, nil)
	res := sysprep(t, s, ssh)
	if !res.Changed || !strings.Contains(res.Detail, "new keys at first boot") {
		t.Errorf("re-arming: %s", res.Detail)
	}
	if _, err := os.Stat(ran); !os.IsNotExist(err) {
		t.Errorf("the copy that ran is still in scripts-done: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(root, fsops.FirstbootDir, "scripts/0001-sysprep-ssh-hostkeys")); err != nil || !strings.Contains(string(b), "ssh-keygen -A") {
		t.Errorf("not re-armed: %q, %v", b, err)
	}
}

// TestSysprepKeep: kept paths survive every operation, a directory holding
// one loses only the rest, and the result says what was kept.
func TestSysprepKeep(t *testing.T) {
	root := t.TempDir()
	plantTree(t, root, sysprepBase, nil)
	plantTree(t, root, map[string]string{
		"tmp/keep-me": "1", "tmp/other": "2", "tmp/dir/keep-inner": "3", "tmp/dir/drop": "4",
		"var/log/app/app.log": "app", "var/log/syslog": "sys",
		"etc/ssh/ssh_host_ed25519_key": "k", "etc/ssh/ssh_host_ed25519_key.pub": "p", "etc/ssh/ssh_host_rsa_key": "r",
		"etc/machine-id": "0123456789abcdef0123456789abcdef\n",
	}, nil)
	s := fsopstest.New(t, root, nil)
	o := fsops.SysprepOptions{Keep: []string{"/tmp/keep-*", "/tmp/dir/keep-inner", "/var/log/app", "/etc/ssh/ssh_host_ed25519_key*", "/etc/machine-id"}}
	res := sysprep(t, s, o)
	c := sysprepCase{op: "keep",
		gone: []string{"/tmp/other", "/tmp/dir/drop", "/etc/ssh/ssh_host_rsa_key"},
		stays: map[string]string{"/tmp/keep-me": "1", "/tmp/dir/keep-inner": "3", "/var/log/app/app.log": "app", "/var/log/syslog": "",
			"/etc/ssh/ssh_host_ed25519_key": "k", "/etc/ssh/ssh_host_ed25519_key.pub": "p",
			"/etc/machine-id": "0123456789abcdef0123456789abcdef\n"}}
	c.check(t, root)
	for _, want := range []string{"tmp-files: 2 removed, 2 kept", "logfiles: 1 truncated, 1 kept", "machine-id: 1 kept"} {
		if !strings.Contains(res.Detail, want) {
			t.Errorf("detail %q lacks %q", res.Detail, want)
		}
	}
	if again := sysprep(t, s, o); again.Changed {
		t.Errorf("second run: %s", again.Detail)
	}
}

// TestSysprepSymlinks: every operation on an image full of links: links
// are removed as links (or passed over), and nothing they point at is
// removed, emptied or edited.
func TestSysprepSymlinks(t *testing.T) {
	root := t.TempDir()
	plantTree(t, root, sysprepBase, nil)
	plantTree(t, root, map[string]string{"srv/data/file": "precious", "etc/machine-id": "0123456789abcdef0123456789abcdef\n"},
		map[string]string{
			"tmp/to-etc":                               "/etc",
			"tmp/to-passwd":                            "/etc/passwd",
			"var/log/evil.log":                         "/etc/shadow",
			"var/log/evil.1":                           "/etc/group",
			"var/log/sub":                              "/srv/data",
			"var/cache/apt/archives/x.deb":             "/srv/data/file",
			"etc/netplan/50-evil.yaml":                 "/srv/data/file",
			"etc/hosts":                                "/srv/data/file",
			"var/lib/cloud/instances":                  "/srv/data",
			"etc/ssh/ssh_host_evil_key":                "../../srv/data/file",
			"var/lib/dbus/machine-id":                  "/etc/machine-id",
			"etc/udev/rules.d/70-persistent-net.rules": "/srv/data/file",
		})
	before := map[string]string{}
	for _, p := range []string{"etc/passwd", "etc/shadow", "etc/group", "srv/data/file"} {
		b, err := os.ReadFile(filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		before[p] = string(b)
	}
	all, err := fsops.ParseSysprepOperations([]string{"all"})
	if err != nil {
		t.Fatal(err)
	}
	s := fsopstest.New(t, root, nil)
	sysprep(t, s, fsops.SysprepOptions{Operations: all})
	for p, want := range before {
		if got, err := os.ReadFile(filepath.Join(root, p)); err != nil || string(got) != want {
			t.Errorf("%s, a link's target, changed: %q, %v", p, got, err)
		}
	}
	for _, p := range []string{"tmp/to-etc", "tmp/to-passwd", "var/cache/apt/archives/x.deb",
		"var/lib/cloud/instances", "etc/ssh/ssh_host_evil_key", "etc/udev/rules.d/70-persistent-net.rules"} {
		if _, err := os.Lstat(filepath.Join(root, p)); !os.IsNotExist(err) {
			t.Errorf("link %s not removed: %v", p, err)
		}
	}
	for _, p := range []string{"var/log/evil.log", "var/log/evil.1", "var/log/sub", "etc/netplan/50-evil.yaml", "etc/hosts", "var/lib/dbus/machine-id"} {
		if fi, err := os.Lstat(filepath.Join(root, p)); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Errorf("link %s should stay a link: %v, %v", p, fi, err)
		}
	}
}

func TestParseSysprepOperations(t *testing.T) {
	defaults := fsops.DefaultSysprepOperations()
	without := func(names []string, drop ...string) []string {
		return slices.DeleteFunc(slices.Clone(names), func(n string) bool { return slices.Contains(drop, n) })
	}
	var all []string
	for _, op := range fsops.SysprepOperations {
		all = append(all, op.Name)
	}
	cases := []struct {
		items []string
		want  []string
		err   string
	}{
		{items: []string{"defaults"}, want: defaults},
		{items: []string{"udev-persistent-net", "ssh-hostkeys"}, want: []string{"ssh-hostkeys", "udev-persistent-net"}},
		{items: []string{"defaults", "-tmp-files", " -logfiles "}, want: without(defaults, "tmp-files", "logfiles")},
		{items: []string{"+cron-spool", "defaults"}, want: without(all, "imgbake-state")},
		{items: []string{"all", "-imgbake-state"}, want: without(all, "imgbake-state")},
		{items: []string{"-tmp-files"}, err: `start from the defaults, e.g. defaults,-tmp-files`},
		{items: []string{"tmp-file"}, err: `"tmp-file" is not a sysprep operation; did you mean "tmp-files"?`},
		{items: []string{"bogus"}, err: `"bogus" is not a sysprep operation (imgbake sysprep --list-operations lists them)`},
		{items: []string{"defaults", ""}, err: "an empty operation name"},
		{items: []string{"defaults", "-defaults"}, err: "selects no operation"},
	}
	for _, c := range cases {
		got, err := fsops.ParseSysprepOperations(c.items)
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%q: error %v, want one containing %q", c.items, err, c.err)
		case c.err == "" && (err != nil || !reflect.DeepEqual(got, c.want)):
			t.Errorf("%q: %v, %v; want %v", c.items, got, err, c.want)
		}
	}
}

func TestSysprepOptionsChecked(t *testing.T) {
	root := t.TempDir()
	plantTree(t, root, sysprepBase, nil)
	s := fsopstest.New(t, root, nil)
	for _, c := range []struct {
		o   fsops.SysprepOptions
		err string
	}{
		{fsops.SysprepOptions{Operations: []string{"nope"}}, `"nope" is not a sysprep operation`},
		{fsops.SysprepOptions{Keep: []string{"var/log"}}, "must be an absolute path"},
		{fsops.SysprepOptions{Keep: []string{"/var/log/[x"}}, "syntax error in pattern"},
		{fsops.SysprepOptions{MachineID: "random"}, "want empty or uninitialized"},
	} {
		if _, err := fsops.Sysprep(context.Background(), s, c.o); err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%+v: %v, want %q", c.o, err, c.err)
		}
	}
}

func TestSysprepMachineIDUninitialized(t *testing.T) {
	root := t.TempDir()
	plantTree(t, root, sysprepBase, nil)
	plantTree(t, root, map[string]string{"etc/machine-id": "0123456789abcdef0123456789abcdef\n"}, nil)
	s := fsopstest.New(t, root, nil)
	o := fsops.SysprepOptions{Operations: []string{"machine-id"}, MachineID: fsops.MachineIDUninitialized}
	if res := sysprep(t, s, o); res.Detail != "machine-id: /etc/machine-id: uninitialized" {
		t.Errorf("detail %q", res.Detail)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/machine-id")); string(b) != "uninitialized\n" {
		t.Errorf("/etc/machine-id = %q", b)
	}
	if res := sysprep(t, s, o); res.Changed {
		t.Errorf("second run: %s", res.Detail)
	}
}
