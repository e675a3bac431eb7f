package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/imgbake/imgbake/appliance/distro"
	"github.com/imgbake/imgbake/appliance/fstab"
	"github.com/imgbake/imgbake/appliance/proto"
)

// linuxRootTypes are tried as root filesystems, in this order of preference.
var linuxRootTypes = map[string]int{"ext4": 0, "ext3": 0, "ext2": 0, "xfs": 1, "btrfs": 2, "vfat": 9}

func (a *Agent) handleMount(_ context.Context, _ *stream, raw json.RawMessage) (any, error) {
	args, err := decode[proto.MountArgs](raw)
	if err != nil {
		return nil, err
	}
	if a.isMounted() {
		return nil, errors.New("the image is already mounted")
	}
	a.readOnly = args.ReadOnly
	a.noJournal = args.Disposable && !args.ReadOnly
	var phases []string
	t := time.Now()
	phase := func(name string) {
		phases = append(phases, fmt.Sprintf("%s %s", name, time.Since(t).Round(time.Millisecond)))
		t = time.Now()
	}
	if a.pid1 {
		if err := waitForDisks(args.Disks, 10*time.Second); err != nil {
			return nil, err
		}
		phase("disks")
	}
	fss, vgs, warnings := a.probeStorage(args.VolumeKeys)
	proto.WipeVolumeKeys(args.VolumeKeys)
	phase("probe")
	res := &proto.MountResult{Filesystems: fss, VolumeGroups: vgs, Warnings: warnings, LUKS: a.luksVols}
	if len(args.Mounts) > 0 {
		err = a.mountExplicit(res, args.Mounts)
	} else {
		err = a.mountDetected(res, args.RequireFstab)
	}
	if err != nil {
		a.unmountAll()
		return nil, err
	}
	phase("mount")
	describeBtrfs(res)
	a.bindSystemDirs(res)
	phase("binds")
	a.prepareGuestEnv(res)
	phase("guest env")
	res.Phases = strings.Join(phases, ", ")
	rootfd, err := unix.Open(proto.Sysroot, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		a.unmountAll()
		return nil, err
	}
	a.state.Lock()
	a.rootfd = rootfd
	a.mounted = true
	a.state.Unlock()
	a.mountInfo = res
	return res, nil
}

func (a *Agent) mountOpts(fstype string) (uintptr, string) {
	var flags uintptr
	data := ""
	if a.readOnly {
		flags |= unix.MS_RDONLY
		switch fstype {
		case "ext3", "ext4":
			data = "noload" // no journal replay on a read-only open
		case "xfs":
			data = "norecovery"
		case "btrfs":
			data = "rescue=nologreplay" // the old spelling nologreplay is gone from newer kernels
		}
	} else if a.noJournal && (fstype == "ext3" || fstype == "ext4") {
		// Metadata goes straight to its place instead of journal and then
		// place. The kernel refuses this when the journal needs replaying;
		// mountFS then mounts with it, which replays it.
		data = "noload"
	}
	return flags, data
}

// mountFS mounts dev at target, where target is an fd-resolved path.
// extra are options the user or the image's fstab asked for (see
// parseMountOptions), added to imgbake's own.
func (a *Agent) mountFS(dev, target, fstype, extra string) error {
	kt := fstype
	if strings.HasPrefix(fstype, "ext") {
		kt = "ext4" // the ext4 driver serves ext2 and ext3 too
	}
	a.ensureFSModules(kt)
	flags, data := a.mountOpts(fstype)
	xflags, xdata, err := parseMountOptions(extra)
	if err != nil {
		return fmt.Errorf("mount %s (%s): %w", dev, fstype, err)
	}
	flags |= xflags
	withExtra := func(d string) string {
		switch {
		case d == "":
			return xdata
		case xdata == "":
			return d
		}
		return d + "," + xdata
	}
	err = unix.Mount(dev, target, kt, flags, withExtra(data))
	if err != nil && data != "" {
		err = unix.Mount(dev, target, kt, flags, withExtra(""))
	}
	if err != nil {
		if extra != "" {
			return fmt.Errorf("mount %s (%s) on %s with options %q: %w", dev, fstype, target, extra, err)
		}
		return fmt.Errorf("mount %s (%s) on %s: %w", dev, fstype, target, err)
	}
	return nil
}

func (a *Agent) mountDetected(res *proto.MountResult, requireFstab bool) error {
	cands := make([]proto.Filesystem, 0, len(res.Filesystems))
	for _, fs := range res.Filesystems {
		if _, ok := linuxRootTypes[fs.Type]; ok {
			cands = append(cands, fs)
		}
	}
	sort.SliceStable(cands, func(i, j int) bool { return linuxRootTypes[cands[i].Type] < linuxRootTypes[cands[j].Type] })
	if err := os.MkdirAll(proto.Sysroot, 0o755); err != nil {
		return err
	}
	luksByDev := map[string]proto.LUKSVolume{}
	for _, v := range res.LUKS {
		luksByDev[v.Device] = v
	}
	for _, fs := range res.Filesystems {
		if v, ok := luksByDev[fs.Device]; ok {
			res.Tried = append(res.Tried, luksTried(v))
		} else if fs.Type == "" {
			res.Tried = append(res.Tried, fs.Device+": no filesystem recognized")
		} else if _, ok := linuxRootTypes[fs.Type]; !ok {
			res.Tried = append(res.Tried, fs.Device+": "+fs.Type+" (not a root filesystem)")
		}
	}
	for _, fs := range cands {
		if err := a.mountFS(fs.Device, proto.Sysroot, fs.Type, ""); err != nil {
			res.Tried = append(res.Tried, fmt.Sprintf("%s: %s: %v", fs.Device, fs.Type, unwrapErrno(err)))
			continue
		}
		var subvols string // the btrfs subvolumes searched for an OS
		if fs.Type == "btrfs" {
			var notRoot string
			if notRoot, subvols = a.btrfsOSSubvolume(fs); notRoot != "" {
				res.Tried = append(res.Tried, fmt.Sprintf("%s: %s %s", fs.Device, fs.Type, notRoot))
				continue
			}
		}
		notRoot, err := a.assembleRoot(res, fs, requireFstab)
		if err != nil {
			return err
		}
		if notRoot != "" && subvols != "" {
			notRoot += " in its default subvolume, nor in its subvolumes (" + subvols + ")"
		}
		if notRoot != "" {
			res.Tried = append(res.Tried, fmt.Sprintf("%s: %s %s", fs.Device, fs.Type, notRoot))
			continue
		}
		return nil
	}
	return &NoOSError{Tried: res.Tried, Locked: lockedLUKS(res.LUKS)}
}

// assembleRoot decides whether the filesystem fs, just mounted at the
// sysroot, is an OS root and if so mounts its fstab on it. A root that
// keeps its os-release on a separate /usr (Flatcar, some hardened layouts:
// /etc/os-release -> ../usr/lib/os-release) is identified only once its
// fstab has mounted /usr. notRoot says why fs is no root; everything is
// unmounted again then. An error is a root whose fstab could not be
// mounted in full when requireFstab asks for that.
func (a *Agent) assembleRoot(res *proto.MountResult, fs proto.Filesystem, requireFstab bool) (notRoot string, err error) {
	rootfd, err := unix.Open(proto.Sysroot, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		unmountBelow(proto.Sysroot)
		return fmt.Sprintf("cannot be opened: %v", err), nil
	}
	defer func() {
		if rootfd >= 0 {
			unix.Close(rootfd)
		}
	}()
	reject := func(why string) (string, error) {
		unix.Close(rootfd) // an open fd would keep the mount busy
		rootfd = -1
		unmountBelow(proto.Sysroot)
		res.Root, res.Mounts, res.Binds = "", nil, nil
		return why, nil
	}
	_, identified := distro.Identify(imageFiles{rootfd})
	entries, fstabProblem := readFstab(rootfd)
	a.cryptAliases = readCrypttab(rootfd, res.Filesystems, res.LUKS)
	usr, hasUsr := fstabEntryFor(entries, "/usr")
	if !identified && !hasUsr {
		return reject(withoutRelease)
	}
	res.Root = fs.Device
	res.Mounts = append(res.Mounts, proto.Mount{Mountpoint: "/", Device: fs.Device, Type: fs.Type})
	failed := a.mountFstab(res, entries)
	if !identified {
		if _, ok := distro.Identify(imageFiles{rootfd}); !ok {
			for _, f := range failed {
				if f.entry.Line == usr.Line {
					return reject("without /etc/os-release; its /usr did not mount: " + f.reason)
				}
			}
			return reject(fmt.Sprintf("without /etc/os-release, even with /usr mounted (/etc/fstab line %d)", usr.Line))
		}
	}
	if fstabProblem != "" {
		res.Warnings = append(res.Warnings, fstabProblem)
	}
	var required []fstabFailure
	for _, f := range failed {
		if fstab.HasOption(f.entry.MntOps, "nofail") {
			res.Warnings = append(res.Warnings, f.reason+" (nofail: left unmounted)")
			continue
		}
		res.Warnings = append(res.Warnings, f.reason)
		required = append(required, f)
	}
	if requireFstab && len(required) > 0 {
		return "", &FstabError{Root: fs, Failed: required, Tried: res.Tried, Filesystems: res.Filesystems}
	}
	return "", nil
}

// withoutRelease says why a filesystem is no root; NoOSError names the
// release files once.
const withoutRelease = "without /etc/os-release or a release file"

// NoOSError says no filesystem held an operating system. Locked are the
// LUKS volumes left closed: the root may be in one.
type NoOSError struct{ Tried, Locked []string }

func (e *NoOSError) Error() string {
	if len(e.Tried) == 0 {
		return "no operating system found: the disk has no filesystems"
	}
	msg := "no operating system found"
	if len(e.Locked) > 0 {
		msg += " (the root may be on an encrypted volume: " + strings.Join(e.Locked, "; ") + ")"
	}
	if slices.ContainsFunc(e.Tried, func(t string) bool { return strings.Contains(t, withoutRelease) }) {
		var files []string
		for _, f := range distro.ReleaseFiles() {
			if !strings.HasSuffix(f, "/os-release") {
				files = append(files, f)
			}
		}
		msg += " (the release files looked for: " + strings.Join(files, ", ") + ")"
	}
	return msg + "; tried: " + strings.Join(e.Tried, "; ") + "; " + mountByHandHint
}

// mountByHandHint ends the messages of layouts detection cannot mount.
const mountByHandHint = "mount the filesystems by hand with -m DEVICE[:MOUNTPOINT] (the root first)"

func (a *Agent) mountExplicit(res *proto.MountResult, specs []proto.MountSpec) error {
	sorted := append([]proto.MountSpec{}, specs...)
	for i := range sorted {
		if sorted[i].Mountpoint == "" {
			sorted[i].Mountpoint = "/"
		}
	}
	sort.SliceStable(sorted, func(i, j int) bool {
		return strings.Count(path.Clean(sorted[i].Mountpoint), "/") < strings.Count(path.Clean(sorted[j].Mountpoint), "/") ||
			sorted[i].Mountpoint == "/" && sorted[j].Mountpoint != "/"
	})
	if sorted[0].Mountpoint != "/" {
		return errors.New("-m: no filesystem given for /")
	}
	if err := os.MkdirAll(proto.Sysroot, 0o755); err != nil {
		return err
	}
	byDev := map[string]proto.Filesystem{}
	for _, fs := range res.Filesystems {
		byDev[fs.Device] = fs
	}
	for i, s := range sorted {
		dev := s.Device
		if !strings.HasPrefix(dev, "/dev/") {
			dev = "/dev/" + dev
		}
		fs, ok := byDev[dev]
		if !ok {
			return fmt.Errorf("-m %s: no such device (have %s)", s.Device, strings.Join(deviceNames(res.Filesystems), ", "))
		}
		if fs.Type == "" {
			return fmt.Errorf("-m %s: no filesystem recognized on it", s.Device)
		}
		target := proto.Sysroot
		if i > 0 {
			t, closeT, err := a.resolveMountpoint(s.Mountpoint)
			if err != nil {
				return fmt.Errorf("-m %s:%s: %w", s.Device, s.Mountpoint, err)
			}
			target = t
			defer closeT()
		}
		if err := a.mountFS(dev, target, fs.Type, s.Options); err != nil {
			return err
		}
		res.Mounts = append(res.Mounts, proto.Mount{Mountpoint: path.Clean(s.Mountpoint), Device: dev, Type: fs.Type, Options: s.Options})
		if i == 0 {
			res.Root = dev
		}
	}
	return nil
}

func deviceNames(fss []proto.Filesystem) []string {
	var out []string
	for _, fs := range fss {
		out = append(out, fs.Device)
	}
	return out
}

// resolveMountpoint opens a directory of the mounted image in root and
// returns a /proc/self/fd path for it: mounting there cannot be redirected by
// a symlink in the image into the appliance.
func (a *Agent) resolveMountpoint(mp string) (string, func(), error) {
	rootfd, err := unix.Open(proto.Sysroot, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", nil, err
	}
	defer unix.Close(rootfd)
	fd, err := openInRoot(rootfd, mp, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return "", nil, err
	}
	return "/proc/self/fd/" + strconv.Itoa(fd), func() { unix.Close(fd) }, nil
}

// resolveSpec maps an fstab device spec to one of our devices. Device names
// from the original machine (sda, xvda, hda) are mapped by letter and
// partition number onto our virtio disks, the way libguestfs does.
func resolveSpec(spec string, fss []proto.Filesystem) (proto.Filesystem, bool) {
	key, val, hasEq := strings.Cut(spec, "=")
	val = strings.Trim(val, `"`)
	for _, fs := range fss {
		if hasEq {
			switch key {
			case "UUID":
				if strings.EqualFold(fs.UUID, val) {
					return fs, true
				}
			case "LABEL":
				if fs.Label == val {
					return fs, true
				}
			case "PARTUUID":
				if fs.PartUUID != "" && strings.EqualFold(fs.PartUUID, val) {
					return fs, true
				}
			case "PARTLABEL":
				if fs.PartLabel != "" && fs.PartLabel == val {
					return fs, true
				}
			}
			continue
		}
		// md names: /dev/md/NAME as mdadm makes it, with or without the
		// "host:" of the array's name; /dev/mdN (the Device itself).
		if fs.MDArray != "" && (spec == "/dev/md/"+fs.MDArray || spec == "/dev/md/"+mdShortName(fs.MDArray)) {
			return fs, true
		}
		// LVM names: /dev/VG/LV, /dev/mapper/VG-LV (the Device itself).
		if fs.LV != "" && (spec == "/dev/"+fs.VG+"/"+fs.LV || spec == "/dev/disk/by-id/dm-name-"+proto.DMName(fs.VG, fs.LV)) {
			return fs, true
		}
		switch {
		case strings.HasPrefix(spec, "/dev/disk/by-uuid/"):
			return resolveSpec("UUID="+strings.TrimPrefix(spec, "/dev/disk/by-uuid/"), fss)
		case strings.HasPrefix(spec, "/dev/disk/by-label/"):
			return resolveSpec("LABEL="+strings.TrimPrefix(spec, "/dev/disk/by-label/"), fss)
		case strings.HasPrefix(spec, "/dev/disk/by-partuuid/"):
			return resolveSpec("PARTUUID="+strings.TrimPrefix(spec, "/dev/disk/by-partuuid/"), fss)
		case strings.HasPrefix(spec, "/dev/disk/by-partlabel/"):
			return resolveSpec("PARTLABEL="+strings.TrimPrefix(spec, "/dev/disk/by-partlabel/"), fss)
		}
		if fs.Device == mapDeviceName(spec) {
			return fs, true
		}
	}
	return proto.Filesystem{}, false
}

func mapDeviceName(spec string) string {
	name := strings.TrimPrefix(spec, "/dev/")
	for _, p := range []string{"xvd", "sd", "hd", "vd"} {
		if strings.HasPrefix(name, p) {
			return "/dev/vd" + strings.TrimPrefix(name, p)
		}
	}
	return spec
}

// bindSystemDirs makes /proc, /sys and /dev of the appliance visible in the
// image once, so chrooted commands work.
func (a *Agent) bindSystemDirs(res *proto.MountResult) {
	for _, d := range []string{"/proc", "/sys", "/dev"} {
		target, closeT, err := a.resolveMountpoint(d)
		if err != nil {
			res.Warnings = append(res.Warnings, fmt.Sprintf("image has no %s directory: commands may fail", d))
			continue
		}
		err = unix.Mount(d, target, "", unix.MS_BIND|unix.MS_REC, "")
		closeT()
		if err != nil {
			res.Warnings = append(res.Warnings, fmt.Sprintf("bind %s: %v", d, err))
			continue
		}
	}
}

// unmountAll unmounts the image and removes the LVM mappings made for it.
func (a *Agent) unmountAll() []string {
	a.state.Lock()
	if a.rootfd > 0 {
		unix.Close(a.rootfd)
		a.rootfd = -1
	}
	a.mounted = false
	a.state.Unlock()
	problems := unmountBelow(proto.Sysroot)
	problems = append(problems, a.deactivateLVM()...)
	return append(problems, a.stopMD()...)
}

// unmountBelow unmounts prefix and everything below it in reverse mount
// order. The list comes from /proc/self/mountinfo, which shows the real
// paths even when a mountpoint was reached through the image's symlinks.
func unmountBelow(prefix string) []string {
	var problems []string
	mps := mountsBelow(prefix)
	for i := len(mps) - 1; i >= 0; i-- {
		m := mps[i]
		rel := strings.TrimPrefix(m, prefix)
		flags := 0
		if rel == "/proc" || rel == "/sys" || rel == "/dev" || strings.HasPrefix(rel, "/proc/") ||
			strings.HasPrefix(rel, "/sys/") || strings.HasPrefix(rel, "/dev/") {
			flags = unix.MNT_DETACH
		}
		if err := unix.Unmount(m, flags); err != nil {
			problems = append(problems, fmt.Sprintf("unmount %s: %v", m, err))
			_ = unix.Unmount(m, unix.MNT_DETACH)
		}
	}
	return problems
}

func mountsBelow(prefix string) []string {
	var out []string
	for _, m := range mountInfoBelow(prefix) {
		out = append(out, m.mountpoint)
	}
	return out
}

// mountInfo is one line of /proc/self/mountinfo.
type mountInfo struct {
	mountpoint string
	device     string // major:minor of the filesystem; a bind mount has its source's
	root       string // what of the filesystem is mounted: a btrfs subvolume's path, a bind mount's source
	fstype     string
}

// mountInfoBelow lists the mounts at prefix and below it, in mount order.
func mountInfoBelow(prefix string) []mountInfo {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []mountInfo
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := fstab.Unescape(f[4])
		if mp == prefix || strings.HasPrefix(mp, prefix+"/") {
			m := mountInfo{mountpoint: mp, device: f[2], root: fstab.Unescape(f[3])}
			// Optional fields end at "-"; the filesystem type follows.
			if i := slices.Index(f[6:], "-"); i >= 0 && 6+i+1 < len(f) {
				m.fstype = f[6+i+1]
			}
			out = append(out, m)
		}
	}
	return out
}
