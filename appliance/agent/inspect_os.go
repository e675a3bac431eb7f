package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path"

	"golang.org/x/sys/unix"

	"github.com/imgbake/imgbake/appliance/distro"
	"github.com/imgbake/imgbake/appliance/proto"
)

// Multi-boot inspection: every filesystem that holds an OS root, not only
// the one mounted as /. Filesystems not mounted in the image are mounted
// read-only, without journal or log replay, one at a time under osProbeDir.

const osProbeDir = "/run/imgbake-os"

// osProbeTopDir is where the top level of a btrfs filesystem is mounted
// while its subvolumes are searched for an OS.
const osProbeTopDir = "/run/imgbake-os-top"

func (a *Agent) handleListOS(context.Context, *stream, json.RawMessage) (any, error) {
	rootfd, err := a.root()
	if err != nil {
		return nil, err
	}
	res := proto.ListOSResult{OSes: []proto.OSRoot{}}
	if a.mountInfo == nil {
		return res, nil
	}
	mountedAt, subvolAt := map[string]string{}, map[string]string{}
	for _, m := range a.mountInfo.Mounts {
		if _, seen := mountedAt[m.Device]; !seen {
			mountedAt[m.Device], subvolAt[m.Device] = m.Mountpoint, m.Subvolume
		}
	}
	for _, fs := range a.mountInfo.Filesystems {
		if _, ok := linuxRootTypes[fs.Type]; !ok {
			continue
		}
		var r proto.OSRoot
		var found bool
		if mp, ok := mountedAt[fs.Device]; ok {
			fd, err := openInRoot(rootfd, mp, unix.O_PATH|unix.O_DIRECTORY, 0)
			if err != nil {
				res.Problems = append(res.Problems, fmt.Sprintf("%s (mounted at %s): %v", fs.Device, mp, unwrapErrno(err)))
				continue
			}
			r, found = osRootAt(fd)
			unix.Close(fd)
			r.Mountpoint, r.Subvolume = mp, subvolAt[fs.Device]
		} else {
			if !a.pid1 {
				continue // in-process tests: nothing is mounted on the host
			}
			r, found, err = a.osOnDevice(fs)
			if err != nil {
				res.Problems = append(res.Problems, fmt.Sprintf("%s (%s): %v", fs.Device, fs.Type, err))
				continue
			}
		}
		if found {
			r.Device, r.Type = fs.Device, fs.Type
			res.OSes = append(res.OSes, r)
		}
	}
	return res, nil
}

// osRootAt describes the OS whose root directory is fd; false when the
// directory has neither os-release nor a release file.
func osRootAt(fd int) (proto.OSRoot, bool) {
	rel, ok := distro.Identify(imageFiles{fd})
	if !ok {
		return proto.OSRoot{}, false
	}
	return proto.OSRoot{ID: rel.ID, VersionID: rel.VersionID, PrettyName: rel.PrettyName, Hostname: hostnameAt(fd)}, true
}

// osOnDevice mounts an unmounted filesystem read-only and looks for an OS
// root on it. The mount must not write: no journal replay (ext noload,
// xfs norecovery, btrfs rescue=nologreplay), and no retry without those options.
func (a *Agent) osOnDevice(fs proto.Filesystem) (proto.OSRoot, bool, error) {
	kt, data := fs.Type, ""
	switch fs.Type {
	case "ext2", "ext3", "ext4":
		kt, data = "ext4", "noload"
	case "xfs":
		data = "norecovery"
	case "btrfs":
		data = "rescue=nologreplay" // the old spelling nologreplay is gone from newer kernels
	}
	a.ensureFSModules(kt)
	if err := os.MkdirAll(osProbeDir, 0o700); err != nil {
		return proto.OSRoot{}, false, err
	}
	flags := uintptr(unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC)
	if err := unix.Mount(fs.Device, osProbeDir, kt, flags, data); err != nil {
		return proto.OSRoot{}, false, fmt.Errorf("mount read-only: %w", unwrapErrno(err))
	}
	defer func() {
		if err := unix.Unmount(osProbeDir, 0); err != nil {
			_ = unix.Unmount(osProbeDir, unix.MNT_DETACH)
		}
	}()
	fd, err := unix.Open(path.Clean(osProbeDir), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return proto.OSRoot{}, false, err
	}
	defer unix.Close(fd)
	r, found := osRootAt(fd)
	if !found && fs.Type == "btrfs" {
		return a.osInBtrfsSubvolume(fd, fs, flags, data)
	}
	return r, found, nil
}

// osInBtrfsSubvolume looks for an OS in the subvolumes of the btrfs
// filesystem whose default subvolume, at fd, has none, by mounting its
// top level beside it (read-only, as osOnDevice mounts; not over it: the
// kernel refuses to stack a filesystem on itself).
func (a *Agent) osInBtrfsSubvolume(fd int, fs proto.Filesystem, flags uintptr, data string) (proto.OSRoot, bool, error) {
	subvols, _, err := btrfsSubvolumes(fd)
	if err != nil || len(subvols) == 0 {
		return proto.OSRoot{}, false, err
	}
	if err := os.MkdirAll(osProbeTopDir, 0o700); err != nil {
		return proto.OSRoot{}, false, err
	}
	if err := unix.Mount(fs.Device, osProbeTopDir, "btrfs", flags, data+",subvolid=5"); err != nil {
		return proto.OSRoot{}, false, fmt.Errorf("mount the top level read-only: %w", unwrapErrno(err))
	}
	defer func() {
		if err := unix.Unmount(osProbeTopDir, 0); err != nil {
			_ = unix.Unmount(osProbeTopDir, unix.MNT_DETACH)
		}
	}()
	top, err := unix.Open(osProbeTopDir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return proto.OSRoot{}, false, err
	}
	defer unix.Close(top)
	sv, ok := osSubvolume(top, subvols)
	if !ok {
		return proto.OSRoot{}, false, nil
	}
	sfd, err := openInRoot(top, "/"+sv.Path, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return proto.OSRoot{}, false, err
	}
	defer unix.Close(sfd)
	r, found := osRootAt(sfd)
	r.Subvolume = sv.Path
	return r, found, nil
}
