package testimages

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/imgbake/imgbake/internal/vmtest"
)

// MountView is a BtrfsView of any filesystem the host kernel mounts: its
// ReadFile and Close work the same way.
type MountView = BtrfsView

// OpenRange mounts read-only, through a loop device, the filesystem of
// type fstype (xfs, ext4, ...) that lies size bytes at offset in the raw
// image: for filesystems that are not partitions, such as LVM volumes
// (Info.RootOffset, Info.RootSize). The host kernel reads it: no imgbake
// code. It needs root and losetup; missing, the test fails under
// IMGBAKE_VM_TESTS=1 and is skipped otherwise.
func OpenRange(t testing.TB, raw string, offset, size int64, fstype string) *MountView {
	t.Helper()
	if os.Geteuid() != 0 {
		vmtest.Missing(t, "reading a filesystem inside an image back needs root (a loop mount)")
		return nil
	}
	vmtest.LookPath(t, "losetup", "mount")
	loop := loopDevice(t, raw, offset, size)
	v := &MountView{Dir: t.TempDir()}
	t.Cleanup(v.Close)
	if out, err := exec.Command("mount", "-t", fstype, "-o", "ro", loop, v.Dir).CombinedOutput(); err != nil {
		_ = exec.Command("losetup", "-d", loop).Run()
		t.Fatalf("testimages: mount %s (%s at byte %d of %s): %v: %s", loop, fstype, offset, raw, err, out)
	}
	v.mounted = true
	// Detached while mounted, the loop device goes at unmount (autoclear).
	if err := exec.Command("losetup", "-d", loop).Run(); err != nil {
		t.Fatalf("testimages: losetup -d %s: %v", loop, err)
	}
	return v
}

// loopDevice attaches a read-only loop device to size bytes at offset of
// raw; the caller detaches it.
func loopDevice(t testing.TB, raw string, offset, size int64) string {
	t.Helper()
	out, err := exec.Command("losetup", "--find", "--show", "--read-only", "--offset", fmt.Sprint(offset),
		"--sizelimit", fmt.Sprint(size), raw).Output()
	if err != nil {
		t.Fatalf("testimages: losetup %s at %d: %v", raw, offset, err)
	}
	return strings.TrimSpace(string(out))
}

// MDExamine is `mdadm --examine` of partition n of the raw image (on a
// read-only loop device: mdadm needs no md in the host kernel to read a
// member's metadata).
func MDExamine(t testing.TB, raw string, n int) string {
	t.Helper()
	vmtest.LookPath(t, "mdadm", "mdadm")
	vmtest.LookPath(t, "losetup", "mount")
	out, err := exec.Command("sfdisk", "-J", raw).Output()
	if err != nil {
		t.Fatalf("testimages: sfdisk -J %s: %v", raw, err)
	}
	start, size, err := parseSfdiskPartition(out, n)
	if err != nil {
		t.Fatal(err)
	}
	loop := loopDevice(t, raw, start, size)
	defer func() { _ = exec.Command("losetup", "-d", loop).Run() }()
	exam, err := exec.Command("mdadm", "--examine", loop).CombinedOutput()
	if err != nil {
		t.Fatalf("testimages: mdadm --examine partition %d of %s: %v: %s", n, raw, err, exam)
	}
	return string(exam)
}

// XFSRepairCheck runs `xfs_repair -n` on the xfs filesystem size bytes at
// offset of the raw image (through a read-only loop device).
func XFSRepairCheck(t testing.TB, raw string, offset, size int64) (string, error) {
	t.Helper()
	vmtest.LookPath(t, "xfs_repair", "xfsprogs")
	vmtest.LookPath(t, "losetup", "mount")
	loop := loopDevice(t, raw, offset, size)
	defer func() { _ = exec.Command("losetup", "-d", loop).Run() }()
	out, err := exec.Command("xfs_repair", "-n", loop).CombinedOutput()
	return string(out), err
}

// StatAt describes path (lstat) in the ext2/3/4 filesystem that starts
// offset bytes into the raw image, with debugfs (see ReadFileAt).
func StatAt(t testing.TB, imagePath string, offset int64, path string) (FileInfo, error) {
	t.Helper()
	v := &view{raw: imagePath, offset: offset, format: "raw"}
	fsType, err := probeFS(v.raw, v.offset)
	if err != nil {
		return FileInfo{}, err
	}
	if fsType != "ext" && fsType != "ext-recover" {
		return FileInfo{}, fmt.Errorf("testimages: no ext2/3/4 filesystem at offset %d of %s", offset, imagePath)
	}
	v.fs = fsType
	needDebugfs(t)
	return v.debugfsLstat(path)
}
