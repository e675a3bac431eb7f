package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/imgbake/imgbake/appliance/fstab"
	"github.com/imgbake/imgbake/appliance/proto"
)

// Operations for looking at and repairing broken images: directory
// listings, probing without mounting (fsck), filesystem usage, fstab
// resolution and journal replay.

func (a *Agent) registerRepairOps(s *server) {
	s.handle(proto.OpReadDir, a.handleReadDir)
	s.handle(proto.OpProbe, a.handleProbe)
	s.handle(proto.OpFSUsage, a.handleFSUsage)
	s.handle(proto.OpFstabCheck, a.handleFstabCheck)
	s.handle(proto.OpReplayLog, a.handleReplayLog)
	s.handle(proto.OpListOS, a.handleListOS)
}

// maxDirEntries bounds one listing: a hostile image may hold a directory
// with millions of names.
const maxDirEntries = 1 << 20

func (a *Agent) handleReadDir(ctx context.Context, st *stream, raw json.RawMessage) (any, error) {
	args, err := decode[proto.PathArgs](raw)
	if err != nil {
		return nil, err
	}
	rootfd, err := a.root()
	if err != nil {
		return nil, err
	}
	p, err := cleanImagePath(args.Path)
	if err != nil {
		return nil, err
	}
	fd, err := openInRoot(rootfd, p, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, &pathError{"open", p, err}
	}
	dir := os.NewFile(uintptr(fd), p)
	defer dir.Close()
	bw := bufio.NewWriterSize(frameWriter{st, proto.TData}, proto.ChunkSize)
	enc := json.NewEncoder(bw)
	n := 0
	for n < maxDirEntries {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		names, rerr := dir.Readdirnames(1024)
		for _, name := range names {
			e := proto.DirEntry{Name: name}
			if s, err := statAt(fd, name, unix.AT_SYMLINK_NOFOLLOW); err == nil {
				e.StatResult = s
			}
			if !utf8.ValidString(e.Name) {
				e.RawName = []byte(e.Name)
			}
			if !utf8.ValidString(e.Target) {
				e.RawTarget = []byte(e.Target)
			}
			// Removed since the listing: still listed, without attributes.
			if err := enc.Encode(e); err != nil {
				return nil, err
			}
			n++
		}
		if rerr != nil {
			break // io.EOF, or an unreadable rest of the directory
		}
	}
	if err := bw.Flush(); err != nil {
		return nil, err
	}
	if err := st.closeWrite(); err != nil {
		return nil, err
	}
	return proto.ReadDirResult{Count: n}, nil
}

func (a *Agent) handleProbe(_ context.Context, _ *stream, raw json.RawMessage) (any, error) {
	var args proto.ProbeArgs
	if len(raw) > 0 {
		var err error
		if args, err = decode[proto.ProbeArgs](raw); err != nil {
			return nil, err
		}
	}
	if err := waitForDisks(args.Disks, 10*time.Second); err != nil {
		return nil, err
	}
	fss, vgs, warnings := a.probeStorage(args.VolumeKeys)
	proto.WipeVolumeKeys(args.VolumeKeys)
	return proto.ProbeResult{Filesystems: fss, VolumeGroups: vgs, Warnings: warnings, LUKS: a.luksVols}, nil
}

// settlePartitions makes sure the partition tables of the disks have been
// read: a hot-plugged disk shows in /sys/block before the kernel has
// scanned its partitions, and a probe in between sees a disk without them.
// BLKRRPART rescans synchronously (and waits for a scan in progress).
func settlePartitions() {
	ents, _ := os.ReadDir("/sys/block")
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "vd") {
			continue
		}
		fd, err := unix.Open("/dev/"+e.Name(), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			continue
		}
		_ = unix.IoctlSetInt(fd, unix.BLKRRPART, 0)
		unix.Close(fd)
	}
}

func (a *Agent) handleFSUsage(context.Context, *stream, json.RawMessage) (any, error) {
	rootfd, err := a.root()
	if err != nil {
		return nil, err
	}
	res := proto.FSUsageResult{}
	if a.mountInfo == nil {
		return res, nil
	}
	for _, m := range a.mountInfo.Mounts {
		u := proto.FSUsage{Mountpoint: m.Mountpoint, Device: m.Device, Type: m.Type}
		// Through an fd opened in the root: an image symlink cannot point
		// statfs at the appliance's own filesystems.
		fd, err := openInRoot(rootfd, m.Mountpoint, unix.O_PATH|unix.O_DIRECTORY, 0)
		if err == nil {
			var sf unix.Statfs_t
			err = unix.Fstatfs(fd, &sf)
			unix.Close(fd)
			if err == nil {
				bs := uint64(sf.Bsize)
				if sf.Frsize > 0 {
					bs = uint64(sf.Frsize)
				}
				u.Size = sf.Blocks * bs
				u.Used = (sf.Blocks - sf.Bfree) * bs
				u.Avail = sf.Bavail * bs
				u.Inodes, u.InodesFree = sf.Files, sf.Ffree
				u.ReadOnly = sf.Flags&unix.ST_RDONLY != 0
			}
		}
		if err != nil {
			u.StatfsError = unwrapErrno(err).Error()
		}
		res.Filesystems = append(res.Filesystems, u)
	}
	return res, nil
}

func (a *Agent) handleFstabCheck(context.Context, *stream, json.RawMessage) (any, error) {
	rootfd, err := a.root()
	if err != nil {
		return nil, err
	}
	data, err := readFileAt(rootfd, "/etc/fstab", 1<<20)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return proto.FstabReport{}, nil
		}
		return nil, err
	}
	var fss []proto.Filesystem
	if a.mountInfo != nil {
		fss = a.mountInfo.Filesystems
	}
	rep := proto.FstabReport{Exists: true, Entries: []proto.FstabEntry{}}
	for _, e := range fstab.Parse(data) {
		rep.Entries = append(rep.Entries, checkFstabEntry(e, fss))
	}
	return rep, nil
}

// checkFstabEntry resolves one fstab entry like mountFstab does, and says
// which entries cannot be judged: a plain device name other than the
// sd/vd/xvd/hd disks we map (nvme, md, a device-mapper or LVM path) names a
// device of the original machine we have no way to check.
func checkFstabEntry(e fstab.Entry, fss []proto.Filesystem) proto.FstabEntry {
	out := proto.FstabEntry{Line: e.Line, Spec: e.Spec, Mountpoint: e.File, Type: e.VFSType, Options: e.MntOps}
	key, _, hasEq := strings.Cut(e.Spec, "=")
	switch {
	case e.VFSType != "swap" && skipFstabTypes[e.VFSType], fstab.HasOption(e.MntOps, "bind"), fstab.HasOption(e.MntOps, "rbind"):
		out.Status, out.Note = proto.FstabSkipped, "not a block device"
		return out
	case strings.Contains(e.Spec, ":") && !hasEq, strings.HasPrefix(e.Spec, "//"):
		out.Status, out.Note = proto.FstabSkipped, "network filesystem"
		return out
	case hasEq && key != "UUID" && key != "LABEL" && key != "PARTUUID" && key != "PARTLABEL":
		out.Status, out.Note = proto.FstabUnverified, "unknown tag "+key
		return out
	case !hasEq && !strings.HasPrefix(e.Spec, "/dev/"):
		out.Status, out.Note = proto.FstabSkipped, "not a device"
		return out
	}
	if fs, ok := resolveSpec(e.Spec, fss); ok {
		out.Status, out.Device, out.FSType = proto.FstabOK, fs.Device, fs.Type
		return out
	}
	if !hasEq && !strings.HasPrefix(e.Spec, "/dev/disk/by-") && !mappableDevice(e.Spec) {
		out.Status, out.Note = proto.FstabUnverified, "a device name of the original machine (not checked)"
		return out
	}
	out.Status, out.Note = proto.FstabMissing, "no such device in the image"
	return out
}

// mappableDevice reports whether spec is a disk name that mapDeviceName
// maps onto our virtio disks (/dev/sda1, /dev/vdb, /dev/xvda2, /dev/hda).
func mappableDevice(spec string) bool {
	name := strings.TrimPrefix(spec, "/dev/")
	for _, p := range []string{"xvd", "sd", "hd", "vd"} {
		if rest, ok := strings.CutPrefix(name, p); ok && rest != "" && rest[0] >= 'a' && rest[0] <= 'z' {
			rest = strings.TrimLeft(rest, "abcdefghijklmnopqrstuvwxyz")
			return strings.Trim(rest, "0123456789") == ""
		}
	}
	return false
}

// replayDir is where a device is mounted for a journal replay.
const replayDir = "/run/imgbake-replay"

func (a *Agent) handleReplayLog(_ context.Context, _ *stream, raw json.RawMessage) (any, error) {
	args, err := decode[proto.ReplayLogArgs](raw)
	if err != nil {
		return nil, err
	}
	if a.isMounted() {
		return nil, errors.New("replay_log: the image is mounted; this is for unmounted devices")
	}
	dev := path.Clean(args.Device)
	lvmDev := strings.HasPrefix(dev, proto.MapperDir+"/") && strings.Count(dev, "/") == 3
	if !strings.HasPrefix(dev, "/dev/") || (strings.Count(dev, "/") != 2 && !lvmDev) {
		return nil, fmt.Errorf("replay_log: %q is not a device of the appliance", args.Device)
	}
	fs, err := probeDevice(dev)
	if err != nil {
		return nil, fmt.Errorf("replay_log: %w", err)
	}
	if fs.Type == "" || (args.Type != "" && fs.Type != args.Type) {
		return nil, fmt.Errorf("replay_log: %s holds %q, not %q", dev, fs.Type, args.Type)
	}
	if err := os.MkdirAll(replayDir, 0o700); err != nil {
		return nil, err
	}
	ro, nj := a.readOnly, a.noJournal
	// mountOpts: a read-write mount with the journal, so the log is replayed
	a.readOnly, a.noJournal = false, false
	err = a.mountFS(dev, replayDir, fs.Type, "")
	a.readOnly, a.noJournal = ro, nj
	if err != nil {
		return nil, fmt.Errorf("replay_log: %w", err)
	}
	unix.Sync()
	if err := unix.Unmount(replayDir, 0); err != nil {
		_ = unix.Unmount(replayDir, unix.MNT_DETACH)
		return nil, fmt.Errorf("replay_log: unmount %s: %w", dev, err)
	}
	return proto.ChangeResult{Changed: true}, nil
}
