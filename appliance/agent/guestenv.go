package agent

import (
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/imgbake/imgbake/appliance/proto"
)

// Commands in the image expect what a booted system gives them: a tmpfs
// /dev/shm (Python's multiprocessing locks), /dev/fd and the standard
// stream links, /dev/disk/by-* for the disks, and a tmpfs /run. All of it
// lives in the appliance: /dev of the image is the appliance's devtmpfs
// bound in (bindSystemDirs), and /run is a tmpfs mounted over the image's
// directory before the first command, so the image's own /dev and /run
// are never written and nothing is left behind when unmountAll takes the
// mounts away.

// devLinks are the links udev and systemd make in /dev at boot.
var devLinks = map[string]string{
	"fd":     "/proc/self/fd",
	"stdin":  "/proc/self/fd/0",
	"stdout": "/proc/self/fd/1",
	"stderr": "/proc/self/fd/2",
	"core":   "/proc/kcore",
}

// prepareGuestEnv sets the booted-system parts up after the image is
// mounted and /proc, /sys and /dev are bound into it. What cannot be set
// up is a warning: commands still run, only without it.
func (a *Agent) prepareGuestEnv(res *proto.MountResult) {
	if !a.pid1 {
		return
	}
	for name, target := range devLinks {
		if err := os.Symlink(target, "/dev/"+name); err != nil && !errors.Is(err, os.ErrExist) {
			res.Warnings = append(res.Warnings, fmt.Sprintf("/dev/%s: %v", name, err))
		}
	}
	if err := makeDiskLinks("/dev/disk", res.Filesystems, blockDevices()); err != nil {
		res.Warnings = append(res.Warnings, fmt.Sprintf("/dev/disk: %v", err))
	}
	if err := os.MkdirAll("/dev/shm", 0o1777); err != nil {
		res.Warnings = append(res.Warnings, fmt.Sprintf("/dev/shm: %v", err))
	} else if err := a.mountTmpfsInImage("/dev/shm", "mode=1777"); err != nil {
		res.Warnings = append(res.Warnings, fmt.Sprintf("/dev/shm: %v", err))
	}
}

// commandRun mounts the tmpfs /run over the image's before the first
// command runs in the image. Not at mount time: until a command runs, file
// operations (imgbake ls, cat, copy-out of a broken image) see the image's
// own /run.
func (a *Agent) commandRun() {
	if !a.pid1 {
		return
	}
	a.envMu.Lock()
	defer a.envMu.Unlock()
	if a.runTried {
		return
	}
	a.runTried = true
	// An image without /run (CentOS 6) has none when booted either.
	if err := a.mountTmpfsInImage("/run", "mode=0755"); err != nil {
		if !errors.Is(err, unix.ENOENT) {
			log.Printf("tmpfs on /run of the image: %v", err)
		}
		return
	}
	a.runTmpfs = true
	// What systemd-tmpfiles makes first at boot: /var/lock points here.
	if err := a.mkdirInImage("/run/lock", 0o1777); err != nil {
		log.Printf("/run/lock: %v", err)
	}
}

// mountTmpfsInImage mounts a fresh tmpfs on dir of the image (resolved
// inside the image root, so a symlink cannot lead it into the appliance).
func (a *Agent) mountTmpfsInImage(dir, opts string) error {
	target, closeT, err := a.resolveMountpoint(dir)
	if err != nil {
		return err
	}
	defer closeT()
	return unix.Mount("tmpfs", target, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts)
}

// mkdirInImage makes dir (whose parent exists) in the mounted image with
// mode exactly (umask ignored).
func (a *Agent) mkdirInImage(dir string, mode uint32) error {
	rootfd, err := unix.Open(proto.Sysroot, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(rootfd)
	dirfd, base, err := openParent(rootfd, dir)
	if err != nil {
		return err
	}
	defer unix.Close(dirfd)
	if err := unix.Mkdirat(dirfd, base, mode); err != nil && err != unix.EEXIST {
		return err
	}
	fd, err := unix.Openat(dirfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Fchmod(fd, mode)
}

// diskLink is one /dev/disk/by-KIND/NAME link to a device node.
type diskLink struct {
	kind, name, node string
}

// diskLinks are the by-uuid, by-label, by-partuuid, by-partlabel and
// by-path links udev would make for the probed filesystems fss and the
// block devices names (vda, vda1, dm-0, ...), each to the node name in
// /dev that the device is.
func diskLinks(fss []proto.Filesystem, names []string, nodeOf func(dev string) string, pathID func(name string) string) []diskLink {
	var out []diskLink
	for _, fs := range fss {
		node := nodeOf(fs.Device)
		if node == "" {
			continue
		}
		// udev links filesystems and crypto containers by UUID and label,
		// not the members of LVM or RAID.
		if fs.Type != "" && fs.Type != proto.TypeLVMPV {
			if fs.UUID != "" {
				out = append(out, diskLink{"by-uuid", udevEncode(fs.UUID), node})
			}
			if fs.Label != "" {
				out = append(out, diskLink{"by-label", udevEncode(fs.Label), node})
			}
		}
		if fs.PartUUID != "" {
			out = append(out, diskLink{"by-partuuid", udevEncode(fs.PartUUID), node})
		}
		if fs.PartLabel != "" {
			out = append(out, diskLink{"by-partlabel", udevEncode(fs.PartLabel), node})
		}
	}
	for _, n := range names {
		if strings.HasPrefix(n, "dm-") {
			continue
		}
		disk, part := splitDev(n)
		id := pathID(disk)
		if id == "" {
			continue
		}
		name := id
		if disk != n {
			name = fmt.Sprintf("%s-part%d", id, part)
		}
		out = append(out, diskLink{"by-path", name, n})
	}
	return out
}

// udevEncode escapes a name as blkid_encode_string does for udev's
// ID_FS_*_ENC values: bytes other than ASCII letters, digits, "#+-.:=@_"
// and those of UTF-8 sequences become \xNN.
func udevEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80 || strings.IndexByte("#+-.:=@_", c) >= 0) {
			fmt.Fprintf(&b, `\x%02x`, c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

var pciAddr = regexp.MustCompile(`^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-9a-f]$`)

// sysfsPathID is udev's path_id for a virtio or SCSI disk: the address of
// the PCI device nearest to it ("pci-0000:01:00.0"), as a booted guest's
// /dev/disk/by-path names it.
func sysfsPathID(disk string) string {
	real, err := filepath.EvalSymlinks(filepath.Join("/sys/class/block", disk))
	if err != nil {
		return ""
	}
	pci := ""
	for _, el := range strings.Split(real, "/") {
		if pciAddr.MatchString(el) {
			pci = el
		}
	}
	if pci == "" {
		return ""
	}
	return "pci-" + pci
}

// nodeName is the /dev node name a device path is (/dev/mapper/vg-lv is
// dm-0), or "" for one that is not in /dev.
func nodeName(dev string) string {
	real, err := filepath.EvalSymlinks(dev)
	if err != nil || !strings.HasPrefix(real, "/dev/") {
		return ""
	}
	return strings.TrimPrefix(real, "/dev/")
}

// makeDiskLinks creates the links in dir (the appliance's /dev/disk, seen
// in the image through its bound /dev), relative as udev's are.
func makeDiskLinks(dir string, fss []proto.Filesystem, names []string) error {
	var problems []string
	for _, l := range diskLinks(fss, names, nodeName, sysfsPathID) {
		d := filepath.Join(dir, l.kind)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		p := filepath.Join(d, l.name)
		_ = os.Remove(p) // a second mount (another disk set) replaces it
		if err := os.Symlink("../../"+l.node, p); err != nil {
			problems = append(problems, err.Error())
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}
