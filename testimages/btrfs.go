package testimages

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/imgbake/imgbake/internal/vmtest"
)

// BtrfsView is the btrfs filesystem of one partition of an image, mounted
// read-only on the host through a loop device (the host kernel's btrfs and
// btrfs-progs: no imgbake code), its top level (subvolid=5) at Dir, so
// every subvolume is visible by its path ("@/home/file"). Close unmounts
// it (the loop device goes with it); so does the test's cleanup.
type BtrfsView struct {
	Dir     string
	tmp     string
	mounted bool
	done    bool
}

// OpenBtrfs mounts partition (1-based) of the image (raw or qcow2, ""
// detects; a qcow2 is converted to raw in a temporary directory first).
// It needs root, losetup and btrfs-progs: missing, the test fails under
// IMGBAKE_VM_TESTS=1 and is skipped otherwise.
func OpenBtrfs(t testing.TB, imagePath, format string, partition int) *BtrfsView {
	t.Helper()
	if os.Geteuid() != 0 {
		vmtest.Missing(t, "reading a btrfs image back needs root (a loop mount)")
		return nil
	}
	vmtest.LookPath(t, "losetup", "mount")
	vmtest.LookPath(t, "btrfs", "btrfs-progs")
	v, err := openView(t, imagePath, format, partition)
	if err != nil {
		t.Fatal(err)
	}
	size, err := partitionSize(v.raw, partition)
	if err != nil {
		v.close()
		t.Fatal(err)
	}
	bv := &BtrfsView{Dir: t.TempDir(), tmp: v.tmp}
	t.Cleanup(bv.Close)
	out, err := exec.Command("losetup", "--find", "--show", "--read-only", "--offset", fmt.Sprint(v.offset),
		"--sizelimit", fmt.Sprint(size), v.raw).Output()
	if err != nil {
		t.Fatalf("testimages: losetup %s: %v", v.raw, err)
	}
	loop := strings.TrimSpace(string(out))
	if out, err := exec.Command("mount", "-t", "btrfs", "-o", "ro,subvolid=5,rescue=nologreplay", loop, bv.Dir).CombinedOutput(); err != nil {
		_ = exec.Command("losetup", "-d", loop).Run()
		t.Fatalf("testimages: mount %s (partition %d of %s): %v: %s", loop, partition, imagePath, err, out)
	}
	bv.mounted = true
	// Detached while mounted, the loop device is freed at unmount
	// (autoclear), even if the test process dies first and the mount is
	// undone by hand.
	if err := exec.Command("losetup", "-d", loop).Run(); err != nil {
		t.Fatalf("testimages: losetup -d %s: %v", loop, err)
	}
	return bv
}

// Close unmounts the filesystem and detaches the loop device.
func (v *BtrfsView) Close() {
	if v == nil || v.done {
		return
	}
	v.done = true
	if v.mounted {
		_ = exec.Command("umount", v.Dir).Run()
	}
	if v.tmp != "" {
		os.Remove(v.tmp)
	}
}

// ReadFile reads path (relative to the top level, e.g. "root/etc/hostname";
// resolved inside the mount: a symlink of the image cannot lead out). A
// missing file is an error satisfying errors.Is(err, fs.ErrNotExist).
func (v *BtrfsView) ReadFile(path string) ([]byte, error) {
	fd, err := unix.Openat2(unix.AT_FDCWD, v.Dir, &unix.OpenHow{Flags: unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC})
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	f, err := unix.Openat2(fd, strings.TrimPrefix(path, "/"), &unix.OpenHow{Flags: unix.O_RDONLY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV})
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, fmt.Errorf("%s: %w", path, fs.ErrNotExist)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	file := os.NewFile(uintptr(f), path)
	defer file.Close()
	return io.ReadAll(file)
}

// Subvolumes lists the subvolume paths as `btrfs subvolume list` shows
// them, and the default subvolume's path ("" for the top level) as
// `btrfs subvolume get-default` does.
func (v *BtrfsView) Subvolumes(t testing.TB) (paths []string, def string) {
	t.Helper()
	out, err := exec.Command("btrfs", "subvolume", "list", v.Dir).Output()
	if err != nil {
		t.Fatalf("btrfs subvolume list: %v", err)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			paths = append(paths, f[len(f)-1])
		}
	}
	out, err = exec.Command("btrfs", "subvolume", "get-default", v.Dir).Output()
	if err != nil {
		t.Fatalf("btrfs subvolume get-default: %v", err)
	}
	if _, p, ok := strings.Cut(strings.TrimSpace(string(out)), " path "); ok {
		def = p
	}
	return paths, def
}

// CheckBtrfs runs `btrfs check --readonly` on partition of the image.
func CheckBtrfs(t testing.TB, imagePath, format string, partition int) (string, error) {
	t.Helper()
	vmtest.LookPath(t, "btrfs", "btrfs-progs")
	v, err := openView(t, imagePath, format, partition)
	if err != nil {
		t.Fatal(err)
	}
	defer v.close()
	size, err := partitionSize(v.raw, partition)
	if err != nil {
		t.Fatal(err)
	}
	// btrfs check reads a file, not a byte range: copy the partition out.
	part := filepath.Join(t.TempDir(), "part.btrfs")
	if out, err := exec.Command("dd", "if="+v.raw, "of="+part, "bs=1M", "iflag=skip_bytes,count_bytes",
		fmt.Sprintf("skip=%d", v.offset), fmt.Sprintf("count=%d", size), "conv=sparse", "status=none").CombinedOutput(); err != nil {
		t.Fatalf("dd: %v: %s", err, out)
	}
	defer os.Remove(part)
	out, err := exec.Command("btrfs", "check", "--readonly", part).CombinedOutput()
	return string(out), err
}

// partitionSize is the size in bytes of partition n of a raw disk image
// (0: the whole file).
func partitionSize(raw string, n int) (int64, error) {
	if n == 0 {
		fi, err := os.Stat(raw)
		if err != nil {
			return 0, err
		}
		return fi.Size(), nil
	}
	out, err := exec.Command("sfdisk", "-J", raw).Output()
	if err != nil {
		return 0, fmt.Errorf("testimages: sfdisk -J %s: %v", raw, err)
	}
	_, size, err := parseSfdiskPartition(out, n)
	return size, err
}
