package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgbake/imgbake/testimages"
)

// alpineRecipe uses every system step that depends on the distribution's
// tools or init system: on the Alpine-like image there is no useradd,
// usermod or chpasswd, and services are OpenRC's.
const alpineRecipe = `name: alpine
steps:
  - write: {path: /root/facts, content: "{{ .os.id }} {{ .os.version_id }} {{ .os.family }} {{ .os.package_manager }}\n"}
  - run: "readlink /bin/sh > /root/ran && echo $0 >> /root/ran"
  - user: {name: ops, groups: [wheel], shell: /bin/ash, password: "ops-pw-1", ssh_authorized_keys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx0ZXN0a2V5dGVzdGtleXRlc3RrZXl0ZXN0a2V5 ops@example"]}
  - root_password: {password: "root-pw-1"}
  - ssh_inject: {user: root, key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHJvb3RrZXlyb290a2V5cm9vdGtleXJvb3RrZXk9 root@example"}
  - hostname: web01.example.com
  - firstboot: {command: "echo first > /root/firstboot.txt"}
  - service: {name: crond, enabled: true}
`

// hashMatches checks a crypt(3) hash with openssl, which shares no code
// with imgbake.
func hashMatches(t *testing.T, hash, password string) bool {
	t.Helper()
	f := strings.Split(hash, "$") // "", "6", salt, digest
	if len(f) != 4 || f[1] != "6" {
		t.Errorf("hash %q is not SHA-512 crypt", hash)
		return false
	}
	out, err := exec.Command("openssl", "passwd", "-6", "-salt", f[2], password).Output()
	if err != nil {
		t.Fatalf("openssl passwd: %v", err)
	}
	return strings.TrimSpace(string(out)) == hash
}

// shadowHashOf is user's hash in a shadow file's text.
func shadowHashOf(shadow, user string) string {
	for _, l := range strings.Split(shadow, "\n") {
		if f := strings.Split(l, ":"); len(f) > 1 && f[0] == user {
			return f[1]
		}
	}
	return ""
}

// TestAlpineVM: the Alpine-like image (busybox, OpenRC layout, apk
// database) is identified as Alpine 3.19.1 with apk, and a recipe of
// write, run, user, root_password, ssh_inject, hostname, firstboot and
// service runs on it; everything is read back with debugfs. Then the
// repair commands (ls, cat, edit, reset-password) on it.
func TestAlpineVM(t *testing.T) {
	vmTests(t)
	tmp := privateTmp(t)
	info := testimages.InfoOf(t, testimages.Alpine)
	disk := testimages.Fresh(t, testimages.Alpine)
	before := sha256File(t, disk)

	rep := inspectJSON(t, "-a", disk)
	if rep.OS.ID != "alpine" || rep.OS.VersionID != "3.19.1" || rep.OS.Family != "alpine" || rep.OS.Name != "Alpine Linux v3.19" ||
		rep.OS.Root != "/dev/vda1" || rep.PackageManager != "apk" || rep.PackageFormat != "apk" ||
		rep.PackageDB != "/lib/apk/db/installed" || rep.Hostname != info.Hostname {
		t.Errorf("os %+v, packages %q %q %q, hostname %q", rep.OS, rep.PackageManager, rep.PackageFormat, rep.PackageDB, rep.Hostname)
	}
	if !jsonEqual(rep.Mountpoints, map[string]string{"/": "/dev/vda1"}) || len(rep.Warnings) > 0 {
		t.Errorf("mountpoints %v, warnings %q", rep.Mountpoints, rep.Warnings)
	}
	if sha256File(t, disk) != before {
		t.Fatal("inspect changed the image")
	}

	recipe := writeRecipe(t, alpineRecipe)
	r := imgbake(t, "run", "-a", disk, recipe)
	wantCode(t, r, 0, "run")
	read := func(p string) string {
		t.Helper()
		b, err := testimages.ReadFileDebugfs(t, disk, "raw", info.RootPartition, p)
		if err != nil {
			t.Fatalf("reading %s back: %v", p, err)
		}
		return string(b)
	}
	stat := func(p string) testimages.FileInfo {
		t.Helper()
		fi, err := testimages.StatDebugfs(t, disk, "raw", info.RootPartition, p)
		if err != nil {
			t.Fatalf("stat %s: %v", p, err)
		}
		return fi
	}
	if got := read("/root/facts"); got != "alpine 3.19.1 alpine apk\n" {
		t.Errorf("facts %q", got)
	}
	if got := read("/root/ran"); got != "/bin/busybox\n/bin/sh\n" {
		t.Errorf("run output %q (want busybox's sh)", got)
	}
	passwdData, group, shadow := read("/etc/passwd"), read("/etc/group"), read("/etc/shadow")
	if !strings.Contains(passwdData, "\nops:x:1000:1000::/home/ops:/bin/ash\n") ||
		!strings.Contains(group, "\nops:x:1000:\n") || !strings.Contains(group, "\nwheel:x:10:root,ops\n") {
		t.Errorf("ops in passwd/group:\n%s\n%s", passwdData, group)
	}
	if !hashMatches(t, shadowHashOf(shadow, "ops"), "ops-pw-1") || !hashMatches(t, shadowHashOf(shadow, "root"), "root-pw-1") {
		t.Errorf("shadow does not hold the passwords:\n%s", shadow)
	}
	if fi := stat("/etc/shadow"); fi.Perm() != 0o640 || fi.GID != 42 {
		t.Errorf("/etc/shadow mode %o gid %d, want 0640 root:shadow", fi.Perm(), fi.GID)
	}
	if fi := stat("/home/ops"); !fi.IsDir || fi.UID != 1000 || fi.GID != 1000 {
		t.Errorf("/home/ops: %+v", fi)
	}
	if got := read("/home/ops/.ssh/authorized_keys"); !strings.Contains(got, "ops@example") {
		t.Errorf("ops's authorized_keys %q", got)
	}
	if got := read("/root/.ssh/authorized_keys"); !strings.Contains(got, "root@example") {
		t.Errorf("root's authorized_keys %q", got)
	}
	if got := read("/etc/hostname"); got != "web01\n" {
		t.Errorf("hostname %q", got)
	}
	if got := read("/etc/hosts"); !strings.Contains(got, "127.0.1.1\tweb01.example.com web01\n") || !strings.Contains(got, "localhost") {
		t.Errorf("hosts %q", got)
	}
	// firstboot through OpenRC: the local.d hook, local in the default
	// runlevel, the script waiting for the runner.
	if fi := stat("/etc/local.d/imgbake-firstboot.start"); !fi.IsRegular() || fi.Perm() != 0o755 {
		t.Errorf("local.d hook: %+v", fi)
	}
	if got := read("/etc/local.d/imgbake-firstboot.start"); !strings.Contains(got, "exec /usr/lib/imgbake/firstboot/firstboot.sh") {
		t.Errorf("local.d hook %q", got)
	}
	if fi := stat("/etc/runlevels/default/local"); fi.Target != "/etc/init.d/local" {
		t.Errorf("/etc/runlevels/default/local: %+v", fi)
	}
	if got := read("/usr/lib/imgbake/firstboot/scripts/0001-echo-first-root-firstboot-txt"); got != "#!/bin/sh\necho first > /root/firstboot.txt\n" {
		t.Errorf("firstboot script %q", got)
	}
	if fi := stat("/etc/runlevels/default/crond"); fi.Target != "/etc/init.d/crond" {
		t.Errorf("/etc/runlevels/default/crond: %+v", fi)
	}
	if _, err := testimages.StatDebugfs(t, disk, "raw", info.RootPartition, "/etc/systemd/system/imgbake-firstboot.service"); err == nil {
		t.Error("a systemd unit was installed on an OpenRC image")
	}

	// A second run changes nothing but the run step (a command always
	// counts as a change).
	r = imgbake(t, "run", "--force", "-a", disk, recipe)
	wantCode(t, r, 0, "second run")
	if !strings.Contains(r.stdout+r.stderr, "7 ok, 1 changed,") {
		t.Errorf("second run changed more than the run step:\n%s", r)
	}

	// The repair commands.
	r = imgbake(t, "ls", "-l", "-a", disk, "/etc/runlevels/default")
	wantCode(t, r, 0, "ls")
	if !strings.Contains(r.stdout, "crond") || !strings.Contains(r.stdout, "local") {
		t.Errorf("ls /etc/runlevels/default:\n%s", r)
	}
	r = imgbake(t, "cat", "-a", disk, "/etc/alpine-release")
	wantCode(t, r, 0, "cat")
	if r.stdout != "3.19.1\n" {
		t.Errorf("cat /etc/alpine-release %q", r.stdout)
	}
	r = imgbake(t, "edit", "-e", "s/^web01$/web02/", "-a", disk, "/etc/hostname")
	wantCode(t, r, 0, "edit")
	if got := read("/etc/hostname"); got != "web02\n" {
		t.Errorf("edited hostname %q", got)
	}
	pwFile := filepath.Join(t.TempDir(), "pw")
	must(t, os.WriteFile(pwFile, []byte("reset-pw-2\n"), 0o600))
	r = imgbake(t, "reset-password", "--password-file", pwFile, "-a", disk, "ops")
	wantCode(t, r, 0, "reset-password")
	if !hashMatches(t, shadowHashOf(read("/etc/shadow"), "ops"), "reset-pw-2") {
		t.Errorf("reset-password did not set ops's password:\n%s", r)
	}
	noLeftovers(t, tmp)
}

// TestFlatcarUsrVM: a root whose os-release links into a separate,
// read-only-in-fstab /usr is assembled before it is identified (Flatcar,
// no package manager), a recipe runs on it, and a write into /usr lands on
// the /usr filesystem (read back with debugfs on that partition).
func TestFlatcarUsrVM(t *testing.T) {
	vmTests(t)
	tmp := privateTmp(t)
	info := testimages.InfoOf(t, testimages.FlatcarUsr)
	disk := testimages.Fresh(t, testimages.FlatcarUsr)
	before := sha256File(t, disk)

	rep := inspectJSON(t, "-a", disk)
	if rep.OS.ID != "flatcar" || rep.OS.VersionID != "3760.2.0" || rep.OS.Family != "flatcar" || rep.OS.ReleaseFile != "/etc/os-release" ||
		rep.OS.Root != "/dev/vda1" || rep.PackageManager != "" || rep.PackageDB != "" || rep.Hostname != info.Hostname {
		t.Errorf("os %+v, packages %q %q %q, hostname %q", rep.OS, rep.PackageManager, rep.PackageFormat, rep.PackageDB, rep.Hostname)
	}
	if !jsonEqual(rep.Mountpoints, map[string]string{"/": "/dev/vda1", "/usr": "/dev/vda2"}) || len(rep.Warnings) > 0 {
		t.Errorf("mountpoints %v, warnings %q", rep.Mountpoints, rep.Warnings)
	}
	if sha256File(t, disk) != before {
		t.Fatal("inspect changed the image")
	}

	r := imgbake(t, "run", "-a", disk, writeRecipe(t, `name: flatcar
steps:
  - write: {path: /root/facts, content: "{{ .os.id }} {{ .os.version_id }} {{ .os.family }}\n"}
  - write: {path: /usr/share/imgbake-marker, content: "on /usr\n"}
  - run: "ls /usr/bin/ls > /root/ran"
  - user: {name: ops, shell: /bin/bash}
`))
	wantCode(t, r, 0, "run")
	readPart := func(part int, p string) string {
		t.Helper()
		b, err := testimages.ReadFileDebugfs(t, disk, "raw", part, p)
		if err != nil {
			t.Fatalf("partition %d: reading %s back: %v", part, p, err)
		}
		return string(b)
	}
	if got := readPart(info.RootPartition, "/root/facts"); got != "flatcar 3760.2.0 flatcar\n" {
		t.Errorf("facts %q", got)
	}
	if got := readPart(info.RootPartition, "/root/ran"); got != "/usr/bin/ls\n" {
		t.Errorf("run output %q", got)
	}
	if got := readPart(info.UsrPartition, "/share/imgbake-marker"); got != "on /usr\n" {
		t.Errorf("/usr/share/imgbake-marker on the /usr filesystem: %q", got)
	}
	if _, err := testimages.StatDebugfs(t, disk, "raw", info.RootPartition, "/usr/share/imgbake-marker"); err == nil {
		t.Error("the /usr write landed on the root filesystem, under its mountpoint")
	}
	if !strings.Contains(readPart(info.RootPartition, "/etc/passwd"), "\nops:x:") {
		t.Error("no ops in /etc/passwd")
	}

	r = imgbake(t, "cat", "-a", disk, "/etc/os-release")
	wantCode(t, r, 0, "cat")
	if !strings.Contains(r.stdout, "ID=flatcar\n") {
		t.Errorf("cat /etc/os-release through /usr:\n%s", r)
	}
	r = imgbake(t, "ls", "-a", disk, "/usr/lib")
	wantCode(t, r, 0, "ls")
	if !strings.Contains(r.stdout, "os-release") {
		t.Errorf("ls /usr/lib:\n%s", r)
	}
	r = imgbake(t, "edit", "-e", "s/^flatcar$/edge01/", "-a", disk, "/etc/hostname")
	wantCode(t, r, 0, "edit")
	if got := readPart(info.RootPartition, "/etc/hostname"); got != "edge01\n" {
		t.Errorf("edited hostname %q", got)
	}
	pwFile := filepath.Join(t.TempDir(), "pw")
	must(t, os.WriteFile(pwFile, []byte("reset-pw-3\n"), 0o600))
	r = imgbake(t, "reset-password", "--password-file", pwFile, "-a", disk, "root")
	wantCode(t, r, 0, "reset-password")
	if !hashMatches(t, shadowHashOf(readPart(info.RootPartition, "/etc/shadow"), "root"), "reset-pw-3") {
		t.Errorf("reset-password did not set root's password:\n%s", r)
	}
	noLeftovers(t, tmp)
}
