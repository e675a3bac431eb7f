package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/imgbake/imgbake/appliance/fstab"
	"github.com/imgbake/imgbake/appliance/proto"
)

// ioctlFITRIM is _IOWR('X', 121, struct fstrim_range) of linux/fs.h.
const ioctlFITRIM = 0xC0185879

// fstrimRange is struct fstrim_range.
type fstrimRange struct {
	Start, Len, MinLen uint64
}

func (a *Agent) registerTrimOps(s *server) {
	s.handle(proto.OpTrim, a.handleTrim)
}

// trimTarget is one filesystem mounted from the image.
type trimTarget struct {
	mountpoint, fstype string
}

// trimTargets are the image's writable filesystems below the sysroot, each
// once (a bind mount shares its device with the mount it came from), in
// mount order.
func trimTargets(mountinfo string) []trimTarget {
	var out []trimTarget
	seen := map[string]bool{}
	for _, line := range strings.Split(mountinfo, "\n") {
		// id parent major:minor root mountpoint options [optional...] - fstype source superoptions
		f := strings.Fields(line)
		sep := -1
		for i, x := range f {
			if x == "-" {
				sep = i
				break
			}
		}
		if len(f) < 6 || sep < 6 || sep+1 >= len(f) {
			continue
		}
		mp := fstab.Unescape(f[4])
		if mp != proto.Sysroot && !strings.HasPrefix(mp, proto.Sysroot+"/") {
			continue
		}
		rel := relToRoot(mp)
		if rel == "/proc" || rel == "/sys" || rel == "/dev" || strings.HasPrefix(rel, "/proc/") ||
			strings.HasPrefix(rel, "/sys/") || strings.HasPrefix(rel, "/dev/") {
			continue
		}
		if readOnlyMount(f[5]) || seen[f[2]] {
			continue
		}
		fstype := f[sep+1]
		if fstype == "tmpfs" || fstype == "proc" || fstype == "sysfs" || fstype == "devtmpfs" {
			continue
		}
		seen[f[2]] = true
		out = append(out, trimTarget{mountpoint: mp, fstype: fstype})
	}
	return out
}

func readOnlyMount(opts string) bool {
	for _, o := range strings.Split(opts, ",") {
		if o == "ro" {
			return true
		}
	}
	return false
}

func (a *Agent) handleTrim(_ context.Context, _ *stream, _ json.RawMessage) (any, error) {
	a.state.Lock()
	mounted, readOnly := a.mounted, a.readOnly
	a.state.Unlock()
	if !mounted {
		return nil, errors.New("trim: the image is not mounted")
	}
	if readOnly {
		return nil, errors.New("trim: the image is attached read-only")
	}
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("trim: %w", err)
	}
	unix.Sync()
	res := proto.TrimResult{Filesystems: []proto.TrimmedFS{}}
	for _, t := range trimTargets(string(data)) {
		r := proto.TrimmedFS{Mountpoint: relToRoot(t.mountpoint), Type: t.fstype}
		n, err := fitrim(t.mountpoint)
		switch {
		case err == nil:
			r.Method, r.Bytes = proto.TrimFITRIM, n
		case errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.ENOTTY):
			// The filesystem (or the device under it) cannot discard:
			// zeros are left out of the export all the same.
			n, zerr := zeroFreeSpace(t.mountpoint)
			if zerr != nil {
				return nil, fmt.Errorf("trim %s: FITRIM: %v; zeroing its free space: %w", r.Mountpoint, err, zerr)
			}
			r.Method, r.Bytes = proto.TrimZeroed, n
		default:
			return nil, fmt.Errorf("trim %s (%s): %w", r.Mountpoint, t.fstype, err)
		}
		res.Filesystems = append(res.Filesystems, r)
	}
	unix.Sync()
	return res, nil
}

// fitrim discards the free space of the filesystem at mountpoint and
// returns how many bytes the filesystem says it discarded.
func fitrim(mountpoint string) (uint64, error) {
	fd, err := unix.Open(mountpoint, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	r := fstrimRange{Len: math.MaxUint64}
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), ioctlFITRIM, uintptr(unsafe.Pointer(&r))); errno != 0 {
		return 0, errno
	}
	return r.Len, nil
}

// zeroFreeSpace fills the filesystem's free space with zeros, as
// virt-sparsify does where it cannot trim: a file that is unlinked at once
// (nothing is left behind even if the appliance dies), written until the
// filesystem is full, then synced and closed.
func zeroFreeSpace(mountpoint string) (uint64, error) {
	fd, err := unix.Open(mountpoint, unix.O_WRONLY|unix.O_TMPFILE|unix.O_CLOEXEC, 0o600)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EISDIR) {
		// No O_TMPFILE (vfat and others): a named file, unlinked at once.
		name := mountpoint + "/.imgbake-zero-fill"
		fd, err = unix.Open(name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err == nil {
			if uerr := unix.Unlink(name); uerr != nil {
				unix.Close(fd)
				return 0, uerr
			}
		}
	}
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	buf := make([]byte, 1<<20)
	var written uint64
	for {
		n, err := unix.Write(fd, buf)
		if n > 0 {
			written += uint64(n)
		}
		if errors.Is(err, unix.ENOSPC) || (err == nil && n == 0) {
			break
		}
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return written, err
		}
	}
	if err := unix.Fsync(fd); err != nil && !errors.Is(err, unix.ENOSPC) {
		return written, err
	}
	return written, nil
}
