package agent

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/imgbake/imgbake/appliance/fstab"
	"github.com/imgbake/imgbake/appliance/proto"
)

// Mounting the image's /etc/fstab on the root found: separate /boot, /usr,
// /var, /home, /boot/efi ... each after what it lies on, bind mounts after
// their source, noauto entries, swap, pseudo and network filesystems left
// out, and what did not mount reported.

// skipFstabTypes are never mounted from the image's fstab: pseudo
// filesystems the appliance provides itself, swap, and network mounts.
var skipFstabTypes = map[string]bool{
	"swap": true, "none": true, "proc": true, "sysfs": true, "devpts": true, "tmpfs": true,
	"devtmpfs": true, "nfs": true, "nfs4": true, "cifs": true, "smbfs": true, "auto": false,
	"securityfs": true, "cgroup": true, "cgroup2": true, "debugfs": true, "fuse": true, "9p": true,
	"virtiofs": true, "bind": true, "efivarfs": true, "hugetlbfs": true, "mqueue": true,
}

// maxFstabMounts bounds the entries mounted from one fstab: a real one has
// a few dozen, and ordering them costs the cube of their number.
const maxFstabMounts = 256

// readFstab reads the root's fstab; problem is the warning when it cannot.
func readFstab(rootfd int) (entries []fstab.Entry, problem string) {
	data, err := readFileAt(rootfd, "/etc/fstab", 1<<20)
	switch {
	case errors.Is(err, unix.ENOENT):
		return nil, "no /etc/fstab in the image: only / is mounted"
	case err != nil:
		return nil, fmt.Sprintf("cannot read /etc/fstab (%v): only / is mounted", unwrapErrno(err))
	}
	return fstab.Parse(data), ""
}

// isBind reports whether e is a bind mount ("/srv/data /var/www none bind").
func isBind(e fstab.Entry) bool {
	return e.VFSType == "bind" || fstab.HasOption(e.MntOps, "bind") || fstab.HasOption(e.MntOps, "rbind")
}

// mountable reports whether e is an entry to mount: not /, not noauto, a
// block device's filesystem or a bind mount.
func mountable(e fstab.Entry) bool {
	mp := path.Clean(e.File)
	if mp == "/" || !strings.HasPrefix(mp, "/") || fstab.HasOption(e.MntOps, "noauto") {
		return false
	}
	return isBind(e) || !skipFstabTypes[e.VFSType]
}

// fstabEntryFor is the entry that mounts mp, if any.
func fstabEntryFor(entries []fstab.Entry, mp string) (fstab.Entry, bool) {
	for _, e := range entries {
		if mountable(e) && !isBind(e) && path.Clean(e.File) == mp {
			return e, true
		}
	}
	return fstab.Entry{}, false
}

// below reports whether p lies strictly below the directory dir.
func below(p, dir string) bool { return dir != p && (dir == "/" || strings.HasPrefix(p, dir+"/")) }

// orderFstab returns the entries to mount in the order to mount them: each
// after the entries it lies on (/boot before /boot/efi whatever the order
// in the file; a bind mount after the filesystem holding its source; two
// entries for one mountpoint in the file's order), otherwise in fstab
// order. Entries that depend on each other (two bind mounts each into the
// other's source) keep the file's order.
func orderFstab(entries []fstab.Entry) []fstab.Entry {
	var todo []fstab.Entry
	for _, e := range entries {
		if mountable(e) {
			e.File = path.Clean(e.File)
			todo = append(todo, e)
		}
	}
	mustFollow := func(i, j int) bool { // todo[i] must be mounted after todo[j]
		a, b := todo[i], todo[j]
		switch {
		case i == j:
			return false
		case below(a.File, b.File), a.File == b.File && j < i:
			return true
		}
		if !isBind(a) {
			return false
		}
		src := path.Clean(a.Spec)
		return src == b.File || below(src, b.File)
	}
	done := make([]bool, len(todo))
	out := make([]fstab.Entry, 0, len(todo))
	for len(out) < len(todo) {
		next := -1
		for i := range todo {
			if done[i] {
				continue
			}
			if next < 0 {
				next = i // a cycle leaves the first in file order
			}
			ready := true
			for j := range todo {
				if !done[j] && mustFollow(i, j) {
					ready = false
					break
				}
			}
			if ready {
				next = i
				break
			}
		}
		done[next] = true
		out = append(out, todo[next])
	}
	return out
}

// fstabFailure is an fstab entry that did not mount, and why: the whole
// message, "/etc/fstab line 3: LABEL=data for /data: ...".
type fstabFailure struct {
	entry  fstab.Entry
	reason string
}

// mountFstab mounts entries on the root at the sysroot and reports those
// that did not mount. An entry below a mountpoint that did not mount, or a
// bind mount whose source is there, is not mounted either: it would land on
// the root filesystem's directory instead.
func (a *Agent) mountFstab(res *proto.MountResult, entries []fstab.Entry) []fstabFailure {
	todo := orderFstab(entries)
	var failed []fstabFailure
	if len(todo) > maxFstabMounts {
		res.Warnings = append(res.Warnings, fmt.Sprintf("/etc/fstab has %d entries to mount: only the first %d are", len(todo), maxFstabMounts))
		todo = todo[:maxFstabMounts]
	}
	for _, e := range todo {
		fail := func(format string, args ...any) {
			failed = append(failed, fstabFailure{e, fmt.Sprintf("/etc/fstab line %d: ", e.Line) + fmt.Sprintf(format, args...)})
		}
		if f, ok := lostUnder(e, failed); ok {
			fail("%s for %s: not mounted, as %s did not mount", e.Spec, e.File, f.entry.File)
			continue
		}
		if isBind(e) {
			if err := a.bindMount(e); err != nil {
				fail("bind mount of %s on %s: %v", e.Spec, e.File, err)
				continue
			}
			res.Binds = append(res.Binds, proto.BindMount{Mountpoint: e.File, Source: path.Clean(e.Spec)})
			continue
		}
		fs, ok := resolveSpec(a.cryptSpec(e.Spec), res.Filesystems)
		if !ok {
			failed = append(failed, fstabFailure{e, proto.FstabMissingWarning(e.Line, e.Spec, e.File)})
			continue
		}
		if fs.Type == "" || fs.Type == "swap" || fs.Type == proto.TypeLVMPV {
			fail("%s (%s) has no mountable filesystem", e.Spec, fs.Device)
			continue
		}
		target, closeT, err := a.resolveMountpoint(e.File)
		if err != nil {
			fail("mountpoint %s: %v", e.File, unwrapErrno(err))
			continue
		}
		err = a.mountFS(fs.Device, target, fs.Type, subvolumeOptions(fs.Type, e.MntOps))
		closeT()
		if err != nil {
			fail("%v", err)
			continue
		}
		res.Mounts = append(res.Mounts, proto.Mount{Mountpoint: e.File, Device: fs.Device, Type: fs.Type})
	}
	return failed
}

// lostUnder finds the failed entry e lies on, if any.
func lostUnder(e fstab.Entry, failed []fstabFailure) (fstabFailure, bool) {
	src := path.Clean(e.Spec)
	for _, f := range failed {
		if below(e.File, f.entry.File) || isBind(e) && (src == f.entry.File || below(src, f.entry.File)) {
			return f, true
		}
	}
	return fstabFailure{}, false
}

// bindMount mounts e's source, a path of the image, on its mountpoint
// (rbind: with the mounts below it). Both are resolved inside the image,
// so neither can reach into the appliance.
func (a *Agent) bindMount(e fstab.Entry) error {
	if !strings.HasPrefix(e.Spec, "/") {
		return fmt.Errorf("the source %q is not an absolute path", e.Spec)
	}
	rootfd, err := unix.Open(proto.Sysroot, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(rootfd)
	src, srcStat, err := openPathInRoot(rootfd, path.Clean(e.Spec))
	if err != nil {
		return unwrapErrno(err)
	}
	defer unix.Close(src)
	dst, dstStat, err := openPathInRoot(rootfd, e.File)
	if err != nil {
		return fmt.Errorf("mountpoint: %w", unwrapErrno(err))
	}
	defer unix.Close(dst)
	if srcDir, dstDir := srcStat.Mode&unix.S_IFMT == unix.S_IFDIR, dstStat.Mode&unix.S_IFMT == unix.S_IFDIR; srcDir != dstDir {
		return errors.New("one of source and mountpoint is a directory, the other is not")
	}
	flags := uintptr(unix.MS_BIND)
	if fstab.HasOption(e.MntOps, "rbind") {
		flags |= unix.MS_REC
	}
	return unix.Mount(fdLink(src), fdLink(dst), "", flags, "")
}

// FstabError says a root was found but its fstab did not mount in full,
// when the mount required that (a recipe run: its writes would land on the
// root filesystem's empty mountpoint directories).
type FstabError struct {
	Root        proto.Filesystem
	Failed      []fstabFailure
	Tried       []string           // what was examined before the root
	Filesystems []proto.Filesystem // every device found
}

func (e *FstabError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "the root filesystem %s (%s) was found, but its /etc/fstab does not mount in full:", e.Root.Device, e.Root.Type)
	for _, f := range e.Failed {
		fmt.Fprintf(&b, " %s;", f.reason)
	}
	b.WriteString(" tried: ")
	for _, t := range e.Tried {
		b.WriteString(t + "; ")
	}
	fmt.Fprintf(&b, "%s: %s, the root; devices:", e.Root.Device, e.Root.Type)
	for i, fs := range e.Filesystems {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, " %s", describeFilesystem(fs))
	}
	b.WriteString("; " + mountByHandHint + ", or add nofail to the entries the system can do without")
	return b.String()
}

// describeFilesystem is a device and what it holds: "/dev/vda3 ext4
// LABEL=root UUID=...".
func describeFilesystem(fs proto.Filesystem) string {
	parts := []string{fs.Device}
	if fs.Type == "" {
		parts = append(parts, "(no filesystem)")
	} else {
		parts = append(parts, fs.Type)
	}
	if fs.Label != "" {
		parts = append(parts, "LABEL="+fs.Label)
	}
	if fs.UUID != "" {
		parts = append(parts, "UUID="+fs.UUID)
	}
	return strings.Join(parts, " ")
}
