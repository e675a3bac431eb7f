package main

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/imgbake/imgbake/appliance"
	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/testimages"
)

// TestSysprepListOperations: one "name * description" line per operation,
// as virt-sysprep prints them, * exactly for the default set; no disk needed.
func TestSysprepListOperations(t *testing.T) {
	r := imgbake(t, "sysprep", "--list-operations")
	if r.code != ExitOK {
		t.Fatalf("exit %d\n%s", r.code, r)
	}
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if len(lines) != len(fsops.SysprepOperations) {
		t.Fatalf("%d lines for %d operations:\n%s", len(lines), len(fsops.SysprepOperations), r.stdout)
	}
	line := regexp.MustCompile(`^([a-z0-9-]+) ([* ]) (\S.*)$`)
	for i, op := range fsops.SysprepOperations {
		m := line.FindStringSubmatch(lines[i])
		if m == nil || m[1] != op.Name || (m[2] == "*") != op.Default || m[3] != op.Description {
			t.Errorf("line %d = %q, want %s %v %q", i+1, lines[i], op.Name, op.Default, op.Description)
		}
	}
	for _, optIn := range []string{"cron-spool", "imgbake-state"} {
		if !slices.Contains(lines, optIn+"   "+mustOp(t, optIn).Description) {
			t.Errorf("%s is not listed as opt-in", optIn)
		}
	}
}

func mustOp(t *testing.T, name string) fsops.SysprepOperation {
	t.Helper()
	op, ok := fsops.LookupSysprepOperation(name)
	if !ok {
		t.Fatalf("no operation %s", name)
	}
	return op
}

// TestSysprepBadInput: a bad --operations, --keep or --machine-id is
// refused with exit 2 and a one-line message before anything boots; the
// disk stays byte-identical.
func TestSysprepBadInput(t *testing.T) {
	disk := makeRawDisk(t)
	before := sha256File(t, disk)
	tests := []struct {
		name   string
		args   []string
		stderr string // regexp
	}{
		{"unknown operation", []string{"--operations", "defaults,-tmp-file"}, `--operations: "tmp-file" is not a sysprep operation; did you mean "tmp-files"\?`},
		{"only removals", []string{"--operations", "-tmp-files"}, `only removes operations, and the selection starts empty: start from the defaults, e.g. defaults,-tmp-files`},
		{"empty item", []string{"--operations", "defaults,,logfiles"}, `--operations: an empty operation name in "defaults,,logfiles" \(a stray comma\?\)`},
		{"nothing left", []string{"--operations", "defaults", "--operations", "-defaults"}, `--operations: "defaults,-defaults" selects no operation`},
		{"relative keep", []string{"--keep", "var/log"}, `--keep: keep "var/log": must be an absolute path inside the image`},
		{"bad keep glob", []string{"--keep", "/var/[log"}, `--keep: keep "/var/\[log": syntax error in pattern`},
		{"bad machine-id", []string{"--machine-id", "random"}, `--machine-id "random": want empty or uninitialized`},
		{"an argument", []string{"/etc"}, `sysprep takes no arguments \(got \["/etc"\]\); the disk goes with -a`},
		{"--ro", []string{"--ro"}, `sysprep writes to the image and cannot run with --ro`},
		{"unknown flag", []string{"--bogus"}, `flag provided but not defined: -bogus`},
	}
	boots := appliance.Boots()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := imgbake(t, append([]string{"sysprep", "-a", disk}, tt.args...)...)
			if r.code != ExitUsage {
				t.Errorf("exit %d, want %d\n%s", r.code, ExitUsage, r)
			}
			if !regexp.MustCompile(tt.stderr).MatchString(r.stderr) {
				t.Errorf("stderr does not match %q:\n%s", tt.stderr, r.stderr)
			}
			if n := strings.Count(strings.TrimSpace(r.stderr), "\n"); n > 0 {
				t.Errorf("want a one-line message, got %d lines:\n%s", n+1, r.stderr)
			}
		})
	}
	if r := imgbake(t, "sysprep"); r.code != ExitUsage || !strings.Contains(r.stderr, "no disk image given") {
		t.Errorf("without -a: %s", r)
	}
	if got := appliance.Boots() - boots; got != 0 {
		t.Errorf("bad input booted the appliance %d times", got)
	}
	if sha256File(t, disk) != before {
		t.Error("the disk changed")
	}
}

// plantTraces leaves in the Debian test image (hostname testhost, in
// /etc/hosts as 127.0.1.1) a trace for every sysprep operation, and a fake
// sshd and ssh-keygen so that the first-boot key generation is installed.
const plantTraces = `name: plant traces
steps:
  - run: |
      set -e
      id=0123456789abcdef0123456789abcdef
      echo $id > /etc/machine-id
      mkdir -p /var/lib/dbus && echo $id > /var/lib/dbus/machine-id
      mkdir -p /etc/ssh
      for t in rsa ecdsa ed25519; do echo private > /etc/ssh/ssh_host_${t}_key; echo public > /etc/ssh/ssh_host_${t}_key.pub; done
      printf '#!/bin/sh\n' > /usr/sbin/sshd; printf '#!/bin/sh\n' > /usr/bin/ssh-keygen; chmod 755 /usr/sbin/sshd /usr/bin/ssh-keygen
      echo 'kernel: booted' > /var/log/syslog; echo old > /var/log/syslog.1; echo old | gzip > /var/log/syslog.2.gz
      mkdir -p /var/log/apt /var/log/journal/$id && echo install > /var/log/apt/history.log && echo LPKSHHRH > /var/log/journal/$id/system.journal
      echo x > /tmp/build.txt; mkdir -p /tmp/dir && echo x > /tmp/dir/f; echo keep > /tmp/keep-me; echo x > /var/tmp/y
      mkdir -p /var/cache/apt/archives/partial && echo deb > /var/cache/apt/archives/nginx_1.22_amd64.deb && echo bin > /var/cache/apt/pkgcache.bin
      echo list > /var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease
      mkdir -p /home/ops && echo 'sudo -i' > /home/ops/.bash_history && echo ls > /root/.bash_history && echo x > /root/.zsh_history && echo x > /root/.python_history
      mkdir -p /var/lib/dhcp && echo 'lease {}' > /var/lib/dhcp/dhclient.eth0.leases
      mkdir -p /etc/udev/rules.d && echo 'SUBSYSTEM=="net"' > /etc/udev/rules.d/70-persistent-net.rules
      mkdir -p /etc/NetworkManager/system-connections
      printf '[connection]\nid=Wired\n[ethernet]\nmac-address=52:54:00:12:34:56\n' > /etc/NetworkManager/system-connections/Wired.nmconnection
      mkdir -p /etc/netplan
      printf 'network:\n  ethernets:\n    ens3:\n      dhcp4: true\n      match:\n        macaddress: "52:54:00:12:34:56"\n      set-name: ens3\n  version: 2\n' > /etc/netplan/50-cloud-init.yaml
      mkdir -p /var/lib/systemd && echo seed > /var/lib/systemd/random-seed
      mkdir -p /etc/lvm/devices && echo IDTYPE=sys_wwid > /etc/lvm/devices/system.devices
      mkdir -p /var/lib/cloud/instances/i-1 /var/lib/cloud/seed/nocloud && echo x > /var/lib/cloud/instances/i-1/obj.pkl
      ln -s /var/lib/cloud/instances/i-1 /var/lib/cloud/instance && echo 'instance-id: golden' > /var/lib/cloud/seed/nocloud/meta-data
      mkdir -p /var/mail && echo 'From root' > /var/mail/root
      mkdir -p /var/spool/cron/crontabs && echo '* * * * * true' > /var/spool/cron/crontabs/root
`

// TestSysprepVM plants every trace with a recipe, runs imgbake sysprep
// and reads the image back with debugfs (no imgbake code): the traces are
// gone, what is kept or opt-in stays, the first-boot key generation is
// installed; a second sysprep leaves the image byte-identical; the opt-in
// operations then remove the run-once state and the crontab.
func TestSysprepVM(t *testing.T) {
	vmTests(t)
	tmp := privateTmp(t)
	disk := testimages.Fresh(t, testimages.NoPart)
	if r := imgbake(t, "run", "-a", disk, writeRecipe(t, plantTraces)); r.code != ExitOK {
		t.Fatalf("planting the traces: %s", r)
	}
	r := imgbake(t, "sysprep", "-a", disk, "--keep", "/tmp/keep-me")
	if r.code != ExitOK {
		t.Fatalf("sysprep: %s", r)
	}
	for _, want := range []string{"ssh-hostkeys: 6 removed, new keys at first boot: " + fsops.FirstbootDir + "/scripts/0001-sysprep-ssh-hostkeys",
		"tmp-files: 3 removed, 1 kept", "machine-id: emptied /etc/machine-id", "etc-hosts: 1 edited", "net-hwaddr: 2 edited"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("sysprep's output lacks %q:\n%s", want, r)
		}
	}

	tree, err := testimages.Tree(t, disk, "raw", 0)
	if err != nil {
		t.Fatal(err)
	}
	gone := []string{"/var/lib/dbus/machine-id", "/var/log/syslog.1", "/var/log/syslog.2.gz", "/var/log/journal/0123456789abcdef0123456789abcdef",
		"/tmp/build.txt", "/tmp/dir", "/var/tmp/y", "/var/cache/apt/archives/nginx_1.22_amd64.deb", "/var/cache/apt/pkgcache.bin",
		"/var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease", "/root/.bash_history", "/home/ops/.bash_history",
		"/root/.zsh_history", "/root/.python_history", "/var/lib/dhcp/dhclient.eth0.leases", "/etc/udev/rules.d/70-persistent-net.rules",
		"/var/lib/systemd/random-seed", "/etc/lvm/devices/system.devices", "/var/lib/cloud/instances", "/var/lib/cloud/instance", "/var/mail/root"}
	for _, p := range gone {
		if _, ok := tree[p]; ok {
			t.Errorf("%s is still in the image", p)
		}
	}
	for p := range tree {
		if strings.HasPrefix(p, "/etc/ssh/ssh_host_") || (strings.HasPrefix(p, "/tmp/") && p != "/tmp/keep-me") || strings.HasPrefix(p, "/var/tmp/") {
			t.Errorf("%s is still in the image", p)
		}
	}
	for _, p := range []string{"/tmp", "/var/tmp", "/var/log/journal", "/var/cache/apt/archives/partial",
		"/etc/systemd/system/multi-user.target.wants/" + fsops.FirstbootUnit} {
		if _, ok := tree[p]; !ok {
			t.Errorf("%s is gone", p)
		}
	}

	const script = fsops.FirstbootDir + "/scripts/0001-sysprep-ssh-hostkeys"
	files, err := testimages.ReadFiles(t, disk, "raw", 0, "/etc/machine-id", "/var/log/syslog", "/var/log/apt/history.log", "/tmp/keep-me",
		"/etc/hosts", "/etc/NetworkManager/system-connections/Wired.nmconnection", "/etc/netplan/50-cloud-init.yaml",
		"/var/lib/cloud/seed/nocloud/meta-data", "/var/spool/cron/crontabs/root", fsops.StatePath, script,
		"/etc/systemd/system/"+fsops.FirstbootUnit)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{"/etc/machine-id": "", "/var/log/syslog": "", "/var/log/apt/history.log": "", "/tmp/keep-me": "keep\n",
		"/etc/NetworkManager/system-connections/Wired.nmconnection": "[connection]\nid=Wired\n[ethernet]\n",
		"/etc/netplan/50-cloud-init.yaml":                           "network:\n    ethernets:\n        ens3:\n            dhcp4: true\n    version: 2\n",
		"/var/lib/cloud/seed/nocloud/meta-data":                     "instance-id: golden\n", "/var/spool/cron/crontabs/root": "* * * * * true\n"} {
		if got, ok := files[p]; !ok || string(got) != want {
			t.Errorf("%s = %q (present %v), want %q", p, got, ok, want)
		}
	}
	if hosts := string(files["/etc/hosts"]); strings.Contains(hosts, "testhost") || !strings.Contains(hosts, "localhost") {
		t.Errorf("/etc/hosts:\n%s", hosts)
	}
	if _, ok := files[fsops.StatePath]; !ok {
		t.Errorf("%s (imgbake-state is opt-in) is gone", fsops.StatePath)
	}
	if !strings.Contains(string(files[script]), "ssh-keygen -A") {
		t.Errorf("first-boot script %s: %q", script, files[script])
	}
	if !strings.Contains(string(files["/etc/systemd/system/"+fsops.FirstbootUnit]), "ExecStart="+fsops.FirstbootDir+"/firstboot.sh") {
		t.Errorf("firstboot unit: %q", files["/etc/systemd/system/"+fsops.FirstbootUnit])
	}

	before := sha256File(t, disk)
	if r := imgbake(t, "sysprep", "-a", disk, "--keep", "/tmp/keep-me"); r.code != ExitOK || r.stdout != "tmp-files: 1 kept\n" ||
		!strings.Contains(r.stderr, "nothing to clean; the image is unchanged") {
		t.Errorf("second sysprep: %s", r)
	}
	if sha256File(t, disk) != before {
		t.Error("a sysprep with nothing to clean changed the image")
	}

	if r := imgbake(t, "sysprep", "-a", disk, "--operations", "imgbake-state,cron-spool"); r.code != ExitOK ||
		r.stdout != "cron-spool: 1 removed\nimgbake-state: 1 removed\n" {
		t.Errorf("opt-in operations: %s", r)
	}
	files, err = testimages.ReadFiles(t, disk, "raw", 0, fsops.StatePath, "/var/spool/cron/crontabs/root", "/tmp/keep-me")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 || string(files["/tmp/keep-me"]) != "keep\n" {
		t.Errorf("after the opt-in operations: %q", files)
	}
	noLeftovers(t, tmp)
}
