package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

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
		wantMatch(t, r.stderr, `written into /etc/shadow by imgbake \(the image has no chpasswd\)`, "stderr")
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
