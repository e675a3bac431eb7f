package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imgbake/imgbake/appliance"
	"github.com/imgbake/imgbake/appliance/proto"
	"github.com/imgbake/imgbake/testimages"
)

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
