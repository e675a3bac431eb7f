package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imgbake/imgbake/appliance"
	"github.com/imgbake/imgbake/appliance/proto"
	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/internal/vmtest"
	"github.com/imgbake/imgbake/testimages"
)

// Broken-disk tests: each breaks a fresh copy of a cached test image with
// host tools (debugfs -w on the bare ext4 image, a crash in the appliance
// for xfs), repairs it with imgbake and checks the result with tools that
// share no code with imgbake (debugfs, e2fsck, openssl).

// debugfsWrite runs debugfs -w requests on a bare ext2/3/4 filesystem
// image (testimages.NoPart).
func debugfsWrite(t *testing.T, disk string, reqs ...string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "debugfs.cmds")
	must(t, os.WriteFile(f, []byte(strings.Join(reqs, "\n")+"\n"), 0o600))
	out, err := exec.Command(vmtest.LookPath(t, "debugfs", "e2fsprogs"), "-w", "-f", f, disk).CombinedOutput()
	if err != nil {
		t.Fatalf("debugfs -w: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		l := strings.ToLower(line)
		if strings.HasPrefix(l, "debugfs") {
			continue // the banner and the echoed requests
		}
		if strings.Contains(l, "not found") || strings.Contains(l, "could not") || strings.Contains(l, "error") {
			t.Fatalf("debugfs -w failed: %s\n%s", line, out)
		}
	}
}

// replaceFile puts content at path of a bare ext4 image (0644, root).
func replaceFile(t *testing.T, disk, path, content string) {
	t.Helper()
	src := filepath.Join(t.TempDir(), "content")
	must(t, os.WriteFile(src, []byte(content), 0o644))
	debugfsWrite(t, disk, "rm "+path, "write "+src+" "+path)
}

func readImageFile(t *testing.T, disk string, info testimages.Info, path string) string {
	t.Helper()
	b, err := testimages.ReadFile(t, disk, info.Format, info.RootPartition, path)
	if err != nil {
		t.Fatalf("reading %s back: %v", path, err)
	}
	return string(b)
}

func wantCode(t *testing.T, r cliResult, code int, what string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("%s: exit %d, want %d\n%s", what, r.code, code, r)
	}
}

func wantMatch(t *testing.T, s, re, what string) {
	t.Helper()
	if !regexp.MustCompile(re).MatchString(s) {
		t.Errorf("%s does not match %q:\n%s", what, re, s)
	}
}

// Scenario 1: /etc/fstab names UUIDs that no longer exist (the root's own
// entry, a data disk and a swap partition). inspect still mounts the root
// and warns; fstab check lists them; fstab fix makes the file consistent,
// keeping a backup; a second check is clean.
func TestRepairFstab(t *testing.T) {
	vmTests(t)
	tmp := privateTmp(t)
	info := testimages.InfoOf(t, testimages.NoPart)
	disk := testimages.Fresh(t, testimages.NoPart)
	const broken = "# /etc/fstab: broken by TestRepairFstab\n" +
		"UUID=0dead000-0000-4000-8000-000000000001 / ext4 errors=remount-ro 0 1\n" +
		"UUID=0dead000-0000-4000-8000-000000000002 /data ext4 defaults 0 2\n" +
		"UUID=0dead000-0000-4000-8000-000000000003 none swap sw 0 0\n" +
		"proc /proc proc defaults 0 0\n"
	replaceFile(t, disk, "/etc/fstab", broken)

	r := imgbake(t, "inspect", "--json", "-a", disk)
	wantCode(t, r, 0, "inspect")
	var rep fsops.Inspection
	must(t, json.Unmarshal([]byte(r.stdout), &rep))
	if rep.OS.Root != "/dev/vda" || rep.OS.ID != "debian" {
		t.Errorf("inspect did not mount the root: %+v", rep.OS)
	}
	var missing []string
	for _, e := range rep.FstabProblems {
		missing = append(missing, e.Mountpoint)
	}
	if strings.Join(missing, " ") != "/ /data none" {
		t.Errorf("fstab problems %v, want / /data none", missing)
	}
	wantMatch(t, r.stderr, `warning: /etc/fstab line 3: UUID=0dead000-0000-4000-8000-000000000002 for /data: no such device`, "inspect stderr")
	if len(rep.Usage) == 0 || rep.Usage[0].Mountpoint != "/" || rep.Usage[0].Size < 512<<20 || rep.Usage[0].Used == 0 {
		t.Errorf("usage of /: %+v", rep.Usage)
	}

	r = imgbake(t, "fstab", "check", "-a", disk)
	wantCode(t, r, ExitStepFailed, "fstab check")
	wantMatch(t, r.stdout, `(?m)^line 2\s+missing\s+UUID=0dead000-0000-4000-8000-000000000001\s+/\s`, "fstab check")
	wantMatch(t, r.stdout, `(?m)^line 5\s+skipped\s+proc`, "fstab check")
	wantMatch(t, r.stderr, `3 fstab entries with a missing device`, "fstab check stderr")

	r = imgbake(t, "fstab", "fix", "-a", disk)
	wantCode(t, r, 0, "fstab fix")
	wantMatch(t, r.stdout, `line 2: / now names the root filesystem found \(/dev/vda, UUID=`+info.RootUUID+`\)`, "fstab fix")
	wantMatch(t, r.stdout, `line 3: commented out: UUID=0dead000-0000-4000-8000-000000000002 is not in the image`, "fstab fix")
	want := "# /etc/fstab: broken by TestRepairFstab\n" +
		"UUID=" + info.RootUUID + " / ext4 errors=remount-ro 0 1\n" +
		"# imgbake: device not found: UUID=0dead000-0000-4000-8000-000000000002 /data ext4 defaults 0 2\n" +
		"# imgbake: device not found: UUID=0dead000-0000-4000-8000-000000000003 none swap sw 0 0\n" +
		"proc /proc proc defaults 0 0\n"
	if got := readImageFile(t, disk, info, "/etc/fstab"); got != want {
		t.Errorf("fixed /etc/fstab:\n%s\nwant:\n%s", got, want)
	}
	if got := readImageFile(t, disk, info, "/etc/fstab.imgbake-bak"); got != broken {
		t.Errorf("backup:\n%s\nwant the broken file", got)
	}
	if fi, err := testimages.Stat(t, disk, info.Format, 0, "/etc/fstab"); err != nil || fi.Perm() != 0o644 || fi.UID != 0 {
		t.Errorf("/etc/fstab mode/owner after fix: %+v %v", fi, err)
	}

	r = imgbake(t, "fstab", "check", "-a", disk)
	wantCode(t, r, 0, "fstab check after fix")
	if strings.Contains(r.stdout, "missing") {
		t.Errorf("still missing entries:\n%s", r.stdout)
	}
	noLeftovers(t, tmp)
}

// Scenario 2: an ext4 root with a cleared inode. fsck finds the errors
// without changing the image, fsck --repair repairs them, a second fsck
// reports clean, and the host's e2fsck agrees.
func TestRepairFsckExt4(t *testing.T) {
	vmTests(t)
	tmp := privateTmp(t)
	disk := testimages.Fresh(t, testimages.NoPart)
	debugfsWrite(t, disk, "clri /etc/debian_version", "clri /etc/hostname")
	before := sha256File(t, disk)

	r := imgbake(t, "fsck", "-a", disk)
	wantCode(t, r, ExitStepFailed, "fsck")
	wantMatch(t, r.stdout, `== /dev/vda \(ext4, LABEL=rootfs\): checking`, "fsck")
	wantMatch(t, r.stdout, `(?m)^   Pass 1: Checking inodes`, "fsck (the checker's output, indented)")
	wantMatch(t, r.stdout, `-> /dev/vda: errors found \(e2fsck rc 4\)`, "fsck")
	wantMatch(t, r.stdout, `fsck: 1 errors found; run with --repair to fix`, "fsck")
	if sha256File(t, disk) != before {
		t.Fatal("fsck without --repair changed the image")
	}

	r = imgbake(t, "fsck", "--repair", "-a", disk)
	wantCode(t, r, 0, "fsck --repair")
	wantMatch(t, r.stdout, `-> /dev/vda: repaired \(e2fsck rc 1\)`, "fsck --repair")
	wantMatch(t, r.stdout, `the repairs were written to the image`, "fsck --repair")
	wantMatch(t, r.stdout, `debian_version`, "fsck --repair names what it fixed")

	r = imgbake(t, "fsck", "-a", disk, "/dev/vda")
	wantCode(t, r, 0, "second fsck")
	wantMatch(t, r.stdout, `-> /dev/vda: clean \(e2fsck rc 0\)`, "second fsck")

	if out, err := exec.Command("e2fsck", "-f", "-n", disk).CombinedOutput(); err != nil {
		t.Errorf("the host's e2fsck disagrees: %v\n%s", err, out)
	}
	noLeftovers(t, tmp)
}

// checkOpenSSL verifies a $6$ hash against password with openssl passwd.
func checkOpenSSL(t *testing.T, password, hash string) {
	t.Helper()
	f := strings.Split(hash, "$")
	if len(f) != 4 || f[1] != "6" {
		t.Fatalf("hash %q is not a $6$ (SHA-512) hash with default rounds", hash)
	}
	cmd := exec.Command(vmtest.LookPath(t, "openssl", "openssl"), "passwd", "-6", "-salt", f[2], "-stdin")
	cmd.Stdin = strings.NewReader(password + "\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("openssl passwd: %v", err)
	}
	if got := strings.TrimSpace(string(out)); got != hash {
		t.Errorf("openssl passwd -6 -salt %s gives %s, the image has %s", f[2], got, hash)
	}
}

func shadowField(t *testing.T, shadow, user string) string {
	t.Helper()
	for _, l := range strings.Split(shadow, "\n") {
		if f := strings.Split(l, ":"); len(f) >= 3 && f[0] == user {
			return f[1]
		}
	}
	t.Fatalf("no %s in /etc/shadow:\n%s", user, shadow)
	return ""
}

// Scenario 3: a forgotten root password. reset-password --random prints a
// passphrase whose hash openssl verifies; on an image whose chpasswd is
// gone, --password-file still works (the hash is made on the host).
func TestRepairResetPassword(t *testing.T) {
	vmTests(t)
	tmp := privateTmp(t)

	t.Run("image chpasswd", func(t *testing.T) {
		info := testimages.InfoOf(t, testimages.GPT)
		disk := testimages.Fresh(t, testimages.GPT)
		r := imgbake(t, "reset-password", "--random", "-a", disk, "root")
		wantCode(t, r, 0, "reset-password --random")
		pw := strings.TrimSpace(r.stdout)
		if !regexp.MustCompile(`^[a-z2-9]{5}(-[a-z2-9]{5}){4}$`).MatchString(pw) {
			t.Fatalf("stdout is not just the passphrase: %q", r.stdout)
		}
		wantMatch(t, r.stderr, `new password set for root \(sha512\)`, "stderr")
		shadow := readImageFile(t, disk, info, "/etc/shadow")
		checkOpenSSL(t, pw, shadowField(t, shadow, "root"))
		if fi, err := testimages.Stat(t, disk, info.Format, info.RootPartition, "/etc/shadow"); err != nil || fi.Perm() != 0o640 || fi.UID != 0 {
			t.Errorf("/etc/shadow mode/owner: %+v %v", fi, err)
		}
	})

	t.Run("no chpasswd in the image", func(t *testing.T) {
		info := testimages.InfoOf(t, testimages.NoPart)
		disk := testimages.Fresh(t, testimages.NoPart)
		debugfsWrite(t, disk, "rm /usr/sbin/chpasswd")
		pwFile := filepath.Join(t.TempDir(), "pw")
		must(t, os.WriteFile(pwFile, []byte("correct horse battery\n"), 0o600))
		r := imgbake(t, "reset-password", "--password-file", pwFile, "-a", disk, "root")
		wantCode(t, r, 0, "reset-password --password-file")
		wantMatch(t, r.stderr, `written into /etc/shadow by imgbake: the image's chpasswd did not work \(the image has no chpasswd`, "stderr")
		if r.stdout != "" {
			t.Errorf("stdout should be empty, got %q", r.stdout)
		}
		shadow := readImageFile(t, disk, info, "/etc/shadow")
		checkOpenSSL(t, "correct horse battery", shadowField(t, shadow, "root"))
		if strings.Contains(shadow, "correct horse") {
			t.Error("the plain password is in /etc/shadow")
		}
	})
	noLeftovers(t, tmp)
}

// Scenario 6: an xfs root with a dirty log, made by powering the appliance
// off in the middle of an --in-place run. fsck reports it; fsck --repair
// replays the log (by mounting) and runs xfs_repair; the file written
// before the crash survived.
func TestRepairXFSDirtyLog(t *testing.T) {
	vmTests(t)
	if testing.Short() {
		t.Skip("-short: five appliance starts")
	}
	tmp := privateTmp(t)
	disk := testimages.Fresh(t, testimages.MBRXFS)
	recipe := writeRecipe(t, "name: crash\nsteps:\n"+
		"  - write: {path: /root/before-crash, content: \"survives the crash\\n\"}\n"+
		"  - run: sync; echo o > /proc/sysrq-trigger; sleep 60\n")
	r := imgbake(t, "run", "--in-place", "-a", disk, recipe)
	if r.code == 0 {
		t.Fatalf("the crashing run succeeded:\n%s", r)
	}

	r = imgbake(t, "fsck", "-a", disk)
	wantCode(t, r, ExitStepFailed, "fsck of the crashed xfs")
	wantMatch(t, r.stdout, `-> /dev/vda1: errors found \(xfs_repair rc \d\): the log is dirty`, "fsck")

	r = imgbake(t, "fsck", "--repair", "-a", disk, "vda1")
	wantCode(t, r, 0, "fsck --repair")
	wantMatch(t, r.stdout, `-> /dev/vda1: repaired \(xfs_repair rc 0\): replayed the dirty log`, "fsck --repair")

	r = imgbake(t, "fsck", "-a", disk)
	wantCode(t, r, 0, "fsck after the repair")
	wantMatch(t, r.stdout, `-> /dev/vda1: clean \(xfs_repair rc 0\)`, "fsck after the repair")

	r = imgbake(t, "cat", "-a", disk, "/root/before-crash")
	wantCode(t, r, 0, "cat")
	if r.stdout != "survives the crash\n" {
		t.Errorf("file written before the crash: %q", r.stdout)
	}
	noLeftovers(t, tmp)
}

// The file commands on the partitioned qcow2 image: copy-in, ls, cat,
// copy-out and edit (-e, no change, $EDITOR), checked with debugfs.
func TestRepairFileCommands(t *testing.T) {
	vmTests(t)
	tmp := privateTmp(t)
	info := testimages.InfoOf(t, testimages.GPT)
	disk := testimages.Fresh(t, testimages.GPT)
	src := filepath.Join(t.TempDir(), "payload")
	must(t, os.MkdirAll(filepath.Join(src, "sub"), 0o755))
	must(t, os.WriteFile(filepath.Join(src, "a.txt"), []byte("alpha\n"), 0o640))
	must(t, os.WriteFile(filepath.Join(src, "sub", "run.sh"), []byte("#!/bin/sh\necho run\n"), 0o755))
	must(t, os.Symlink("a.txt", filepath.Join(src, "link")))
	single := filepath.Join(t.TempDir(), "single.conf")
	must(t, os.WriteFile(single, []byte("k=v\n"), 0o600))

	r := imgbake(t, "copy-in", "-a", disk, src, single, "/root")
	wantCode(t, r, 0, "copy-in")

	r = imgbake(t, "ls", "-lR", "-a", disk, "/root/payload")
	wantCode(t, r, 0, "ls -lR")
	wantMatch(t, r.stdout, `(?m)^/root/payload:$`, "ls -lR")
	wantMatch(t, r.stdout, `(?m)^-rw-r----- root\s+root\s+6 \d{4}-\d\d-\d\d \d\d:\d\d a\.txt$`, "ls -lR")
	wantMatch(t, r.stdout, `(?m)^lrwxrwxrwx root\s+root\s+5 .* link -> a\.txt$`, "ls -lR")
	wantMatch(t, r.stdout, `(?m)^/root/payload/sub:\n-rwxr-xr-x root\s+root\s+19 .* run\.sh$`, "ls -lR")

	r = imgbake(t, "cat", "-a", disk, "/root/payload/a.txt", "/root/single.conf")
	wantCode(t, r, 0, "cat")
	if r.stdout != "alpha\nk=v\n" {
		t.Errorf("cat: %q", r.stdout)
	}

	out := t.TempDir()
	r = imgbake(t, "copy-out", "-a", disk, "/root/payload", "/etc/hostname", out)
	wantCode(t, r, 0, "copy-out")
	if b, err := os.ReadFile(filepath.Join(out, "payload", "sub", "run.sh")); err != nil || string(b) != "#!/bin/sh\necho run\n" {
		t.Errorf("copied out run.sh: %q %v", b, err)
	}
	if tgt, err := os.Readlink(filepath.Join(out, "payload", "link")); err != nil || tgt != "a.txt" {
		t.Errorf("copied out link: %q %v", tgt, err)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "hostname")); string(b) != info.Hostname+"\n" {
		t.Errorf("copied out hostname: %q", b)
	}

	// -e on a file with a special owner: /etc/shadow is root:shadow 0640.
	shadowBefore, err := testimages.Stat(t, disk, info.Format, info.RootPartition, "/etc/shadow")
	must(t, err)
	r = imgbake(t, "edit", "-e", `s/^(daemon):\*:/\1:!*:/`, "-e", "s/^nomatch-anywhere$/x/", "-a", disk, "/etc/shadow")
	wantCode(t, r, 0, "edit -e")
	wantMatch(t, r.stderr, `/etc/shadow: 1 replacement written back \(mode and owner kept\)`, "edit -e")
	shadow := readImageFile(t, disk, info, "/etc/shadow")
	if !regexp.MustCompile(`(?m)^daemon:!\*:`).MatchString(shadow) {
		t.Errorf("edit -e did not apply:\n%s", shadow)
	}
	if fi, err := testimages.Stat(t, disk, info.Format, info.RootPartition, "/etc/shadow"); err != nil ||
		fi.Perm() != shadowBefore.Perm() || fi.UID != shadowBefore.UID || fi.GID != shadowBefore.GID {
		t.Errorf("/etc/shadow mode/owner changed: %+v, was %+v (%v)", fi, shadowBefore, err)
	}

	// No change: the image stays byte-identical.
	before := sha256File(t, disk)
	r = imgbake(t, "edit", "-e", "s/^no such line$/x/", "-a", disk, "/etc/shadow")
	wantCode(t, r, 0, "edit with nothing to change")
	wantMatch(t, r.stderr, `nothing to change, the image is unchanged`, "edit with nothing to change")
	if sha256File(t, disk) != before {
		t.Error("an edit that changed nothing changed the image")
	}

	// $EDITOR on the host, given a private copy.
	t.Setenv("VISUAL", "")
	t.Setenv("EDITOR", `test "$(stat -c %a "$1")" = 600 && sed -i s/alpha/beta/`)
	r = imgbake(t, "edit", "-a", disk, "/root/payload/a.txt")
	wantCode(t, r, 0, "edit with $EDITOR")
	if got := readImageFile(t, disk, info, "/root/payload/a.txt"); got != "beta\n" {
		t.Errorf("after $EDITOR: %q", got)
	}
	if fi, err := testimages.Stat(t, disk, info.Format, info.RootPartition, "/root/payload/a.txt"); err != nil || fi.Perm() != 0o640 {
		t.Errorf("mode after $EDITOR: %+v %v", fi, err)
	}
	noLeftovers(t, tmp)
}

// Bad input on a real image: a device that does not exist, paths that try
// to leave the image (a hostile symlink, ..), missing files, a write on a
// read-only open. Each is a clear error and the image stays byte-identical.
func TestRepairBadInputVM(t *testing.T) {
	vmTests(t)
	tmp := privateTmp(t)
	disk := testimages.Fresh(t, testimages.NoPart)
	debugfsWrite(t, disk, "symlink /root/escape ../../../../../../../etc/hostname", "symlink /root/abs /etc/hostname")
	before := sha256File(t, disk)
	host, _ := os.Hostname()
	if host == "testhost" {
		t.Skip("the host is called testhost like the image")
	}

	r := imgbake(t, "cat", "-a", disk, "/root/escape", "/root/abs", "/../../etc/hostname")
	wantCode(t, r, 0, "cat through escaping symlinks")
	if r.stdout != "testhost\ntesthost\ntesthost\n" {
		t.Errorf("cat read outside the image: %q", r.stdout)
	}

	r = imgbake(t, "fsck", "-a", disk, "vdz")
	wantCode(t, r, ExitUsage, "fsck of a missing device")
	wantMatch(t, r.stderr, `imgbake: fsck: no device /dev/vdz in the image \(devices: /dev/vda \(ext4\)\)`, "fsck")

	r = imgbake(t, "cat", "-a", disk, "/etc/hostname", "/nonexistent")
	wantCode(t, r, ExitStepFailed, "cat of a missing file")
	wantMatch(t, r.stderr, `imgbake: cat: open /nonexistent: no such file or directory`, "cat")
	if r.stdout != "testhost\n" {
		t.Errorf("cat printed %q, want the existing file", r.stdout)
	}

	r = imgbake(t, "edit", "-e", "s/a/b/", "-a", disk, "/nonexistent")
	wantCode(t, r, ExitStepFailed, "edit of a missing file")
	wantMatch(t, r.stderr, `edit /nonexistent: /nonexistent does not exist in the image`, "edit")

	hostFile := filepath.Join(t.TempDir(), "f")
	must(t, os.WriteFile(hostFile, []byte("x"), 0o644))
	r = imgbake(t, "copy-in", "-a", disk, hostFile, "/etc/hostname")
	wantCode(t, r, ExitStepFailed, "copy-in onto a file")
	wantMatch(t, r.stderr, `/etc/hostname is not a directory in the image`, "copy-in")

	if sha256File(t, disk) != before {
		t.Error("bad input changed the image")
	}
	noLeftovers(t, tmp)
}

// A read-only open refuses writes in the agent itself (EROFS), whatever the
// host side asks: the image is attached read-only and mounted read-only.
func TestReadOnlyOpenRefusesWrites(t *testing.T) {
	vmTests(t)
	privateTmp(t)
	disk := testimages.Fresh(t, testimages.NoPart)
	before := sha256File(t, disk)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	app, err := appliance.Build(appliance.BuildOptions{})
	must(t, err)
	s, err := appliance.Start(ctx, app, appliance.WithDisk(disk, "raw", true))
	must(t, err)
	defer s.Kill()
	if _, err := s.Mount(ctx, proto.MountArgs{ReadOnly: true}); err != nil {
		t.Fatal(err)
	}
	_, err = s.WriteFile(ctx, proto.WriteArgs{Path: "/etc/hostname"}, strings.NewReader("changed\n"))
	if !errors.Is(err, syscall.EROFS) {
		t.Errorf("write on a read-only open: %v, want EROFS", err)
	}
	if _, err := s.Delete(ctx, "/etc/motd", false); !errors.Is(err, syscall.EROFS) {
		t.Errorf("delete on a read-only open: %v, want EROFS", err)
	}
	must(t, s.Close(ctx))
	if sha256File(t, disk) != before {
		t.Error("the read-only open changed the image")
	}
}
