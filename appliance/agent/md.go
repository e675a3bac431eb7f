package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/imgbake/imgbake/appliance/proto"
)

// md RAID assembly in the agent, the way mdadm assembles through the
// kernel's ioctls: the array's own metadata decides everything. For each
// array (members grouped by the UUID in their superblocks) an md device is
// created, told only the metadata version (SET_ARRAY_INFO), given each
// member (ADD_NEW_DISK: the kernel reads and checks the member's
// superblock, and refuses one of another array), and started through
// sysfs: "readonly" when the session or a member disk is read-only, else
// "read-auto", which writes no metadata until the first write to the
// array, so a session that writes nothing leaves the members as they were.
// A member missing leaves the array degraded: it starts when the level
// allows it, with a warning. Everything started is stopped before
// power-off (STOP_ARRAY), after the LVM volumes on top are gone.

// The md ioctls (include/uapi/linux/raid/md_u.h; MD_MAJOR 9).
const (
	mdIoctlSetArrayInfo = 0x40480923 // _IOW(9, 0x23, mdu_array_info_t)
	mdIoctlAddNewDisk   = 0x40140921 // _IOW(9, 0x21, mdu_disk_info_t)
	mdIoctlStopArray    = 0x00000932 // _IO(9, 0x32)
)

// mduArrayInfo is mdu_array_info_t; only the version fields are set, so
// the kernel takes the rest from the superblocks.
type mduArrayInfo struct {
	MajorVersion, MinorVersion, PatchVersion int32
	Ctime                                    uint32
	Level, Size, NrDisks, RaidDisks          int32
	MdMinor, NotPersistent                   int32
	Utime                                    uint32
	State, ActiveDisks, WorkingDisks         int32
	FailedDisks, SpareDisks, Layout, Chunk   int32
}

// mduDiskInfo is mdu_disk_info_t.
type mduDiskInfo struct {
	Number, Major, Minor, RaidDisk, State int32
}

// mdMember is one member device and its superblock.
type mdMember struct {
	dev string
	sb  *mdSuper
}

// mdArray is an array the agent started.
type mdArray struct {
	node    string   // /dev/mdN
	links   []string // /dev/md/NAME
	name    string   // from the metadata
	level   string   // "raid1"
	members []string // the devices it was started with
}

// groupMDMembers groups the member devices by array UUID (in the order the
// arrays are first seen) and reads their superblocks.
func groupMDMembers(fss []proto.Filesystem) ([][]mdMember, []string) {
	var warnings []string
	var order []string
	groups := map[string][]mdMember{}
	for _, fs := range fss {
		if fs.Type != proto.TypeMDMember {
			continue
		}
		sb, err := readMDSuperFile(fs.Device)
		if err != nil {
			warnings = append(warnings, fmt.Sprintf("md RAID member %s: %v", fs.Device, err))
			continue
		}
		u := sb.UUID()
		if _, ok := groups[u]; !ok {
			order = append(order, u)
		}
		groups[u] = append(groups[u], mdMember{fs.Device, sb})
	}
	out := make([][]mdMember, 0, len(order))
	for _, u := range order {
		out = append(out, groups[u])
	}
	return out, warnings
}

func readMDSuperFile(dev string) (*mdSuper, error) {
	f, err := os.Open(dev)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size, err := f.Seek(0, 2)
	if err != nil {
		return nil, err
	}
	return readMDSuper(f, size, !hasPartitions(filepath.Base(dev)))
}

// assembleMD starts the arrays whose members are among fss. It returns
// warnings; an array that cannot start is one of them, not an error, as
// the rest of the image may still be usable.
func (a *Agent) assembleMD(fss []proto.Filesystem) []string {
	arrays, warnings := groupMDMembers(fss)
	if len(arrays) == 0 {
		return warnings
	}
	a.ensureFSModules(proto.ModulesMD)
	for _, members := range arrays {
		arr, warn, err := a.startMDArray(members)
		warnings = append(warnings, warn...)
		if err != nil {
			warnings = append(warnings, err.Error())
			continue
		}
		a.lvmMu.Lock()
		a.mdActive = append(a.mdActive, arr)
		a.lvmMu.Unlock()
	}
	return warnings
}

// mdStarted says whether arrays are up (they stay until power-off or
// unmountAll stops them).
func (a *Agent) mdStarted() bool {
	a.lvmMu.Lock()
	defer a.lvmMu.Unlock()
	return len(a.mdActive) > 0
}

// mdDescribe names an array for messages: its name, UUID and members.
func mdDescribe(members []mdMember) string {
	sb := members[0].sb
	var devs []string
	for _, m := range members {
		devs = append(devs, m.dev)
	}
	name := sb.name
	if name == "" {
		name = "(unnamed)"
	}
	return fmt.Sprintf("md RAID array %s (UUID %s, metadata %s, members %s)", name, sb.UUID(), sb.Version(), strings.Join(devs, ", "))
}

func (a *Agent) startMDArray(members []mdMember) (*mdArray, []string, error) {
	desc := mdDescribe(members)
	sb := members[0].sb
	for _, m := range members[1:] {
		if m.sb.major != sb.major || m.sb.minor != sb.minor {
			return nil, nil, fmt.Errorf("%s not assembled: members disagree on the metadata version (%s: %s, %s: %s)",
				desc, members[0].dev, sb.Version(), m.dev, m.sb.Version())
		}
	}
	if sb.level == 4 || sb.level == 5 || sb.level == 6 {
		a.ensureFSModules(proto.ModulesMDParity)
	}
	minor, err := freeMDMinor(sb)
	if err != nil {
		return nil, nil, fmt.Errorf("%s not assembled: %w", desc, err)
	}
	name := fmt.Sprintf("md%d", minor)
	if err := os.WriteFile("/sys/module/md_mod/parameters/new_array", []byte(name), 0); err != nil && !errors.Is(err, unix.EEXIST) {
		return nil, nil, fmt.Errorf("%s not assembled: creating %s: %v (is md_mod in the appliance?)", desc, name, unwrapErrno(err))
	}
	node := "/dev/" + name
	if _, err := os.Stat(node); err != nil {
		// devtmpfs makes the node; this appliance-only mknod is a fallback.
		if err := unix.Mknod(node, unix.S_IFBLK|0o600, int(unix.Mkdev(9, uint32(minor)))); err != nil && !errors.Is(err, unix.EEXIST) {
			return nil, nil, fmt.Errorf("%s not assembled: %s: %v", desc, node, err)
		}
	}
	f, err := os.OpenFile(node, os.O_RDONLY, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("%s not assembled: opening %s: %v", desc, node, unwrapErrno(err))
	}
	defer f.Close()
	fd := f.Fd()
	stop := func() { _, _, _ = unix.Syscall(unix.SYS_IOCTL, fd, mdIoctlStopArray, 0) }
	info := mduArrayInfo{MajorVersion: int32(sb.major), MinorVersion: int32(sb.minor)}
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, fd, mdIoctlSetArrayInfo, uintptr(unsafe.Pointer(&info))); e != 0 {
		return nil, nil, fmt.Errorf("%s not assembled: SET_ARRAY_INFO on %s: %v", desc, node, e)
	}
	var warnings []string
	ro := a.readOnly
	var added []string
	// The newest superblocks first: the kernel compares each member with
	// the first one added, and drops the stale ones when it starts.
	sort.SliceStable(members, func(i, j int) bool { return members[i].sb.events > members[j].sb.events })
	for _, m := range members {
		var st unix.Stat_t
		if err := unix.Stat(m.dev, &st); err != nil {
			warnings = append(warnings, fmt.Sprintf("%s: member %s: %v", desc, m.dev, err))
			continue
		}
		d := mduDiskInfo{Major: int32(unix.Major(st.Rdev)), Minor: int32(unix.Minor(st.Rdev))}
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, fd, mdIoctlAddNewDisk, uintptr(unsafe.Pointer(&d))); e != 0 {
			warnings = append(warnings, fmt.Sprintf("%s: member %s refused by the kernel: %v", desc, m.dev, e))
			continue
		}
		added = append(added, m.dev)
		ro = ro || deviceReadOnly(m.dev)
	}
	if len(added) == 0 {
		stop()
		return nil, warnings, fmt.Errorf("%s not assembled: no member could be added", desc)
	}
	state := "read-auto"
	if ro {
		state = "readonly"
	}
	sys := filepath.Join("/sys/block", name, "md")
	if err := os.WriteFile(filepath.Join(sys, "array_state"), []byte(state), 0); err != nil {
		stop()
		return nil, warnings, fmt.Errorf("%s not assembled: starting %s (%s): %v (see the kernel log: a degraded array of this level, or members out of date)", desc, node, state, unwrapErrno(err))
	}
	if deg := readSysInt(filepath.Join(sys, "degraded")); deg > 0 {
		disks := readSysInt(filepath.Join(sys, "raid_disks"))
		warnings = append(warnings, fmt.Sprintf("%s is degraded: %d of its %d members missing; started on %s", desc, deg, disks, node))
	}
	arr := &mdArray{node: node, name: sb.name, level: mdLevelName(sb.level)}
	arr.members = added
	sort.Slice(arr.members, func(i, j int) bool { return devLess(filepath.Base(arr.members[i]), filepath.Base(arr.members[j])) })
	// /dev/md/NAME as the machine that made the array sees it (mdadm's
	// names: the full "host:name" and the short one its own host uses).
	if sb.name != "" {
		_ = os.MkdirAll("/dev/md", 0o755)
		for _, n := range []string{sb.name, mdShortName(sb.name)} {
			if n == "" || strings.ContainsAny(n, "/\x00") || n == "." || n == ".." {
				continue
			}
			link := filepath.Join("/dev/md", n)
			if _, err := os.Lstat(link); err == nil {
				continue // first array of that name wins
			}
			if os.Symlink("../"+name, link) == nil {
				arr.links = append(arr.links, link)
			}
		}
	}
	return arr, warnings, nil
}

// freeMDMinor picks the md minor for an array: the one it was made as
// (0.90's preferred minor, or a v1 name "host:N"), as the guest's own
// initramfs would, when free; else the highest free below 128, as mdadm.
func freeMDMinor(sb *mdSuper) (int, error) {
	free := func(n int) bool {
		_, err := os.Stat(fmt.Sprintf("/sys/block/md%d", n))
		return err != nil
	}
	want := sb.preferMinor
	if sb.major == 1 {
		want = -1
		if n, err := strconv.Atoi(mdShortName(sb.name)); err == nil && n >= 0 && n < 1<<20 {
			want = n
		}
	}
	if want >= 0 && free(want) {
		return want, nil
	}
	for n := 127; n >= 0; n-- {
		if free(n) {
			return n, nil
		}
	}
	return 0, errors.New("no free md device number")
}

// mdLevelName is a RAID level as mdadm names it.
func mdLevelName(level int32) string {
	switch level {
	case -1:
		return "linear"
	case -4:
		return "multipath"
	}
	return fmt.Sprintf("raid%d", level)
}

// labelMDArrays fills in the array name, level and members of the md
// devices among fss.
func (a *Agent) labelMDArrays(fss []proto.Filesystem) {
	a.lvmMu.Lock()
	defer a.lvmMu.Unlock()
	for i := range fss {
		for _, arr := range a.mdActive {
			if fss[i].Device == arr.node {
				fss[i].MDArray, fss[i].MDLevel, fss[i].MDMembers = arr.name, arr.level, arr.members
			}
		}
	}
}

func readSysInt(p string) int {
	b, err := os.ReadFile(p)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

// stopMD stops every array the agent started, newest first, and removes
// its /dev/md links. Called after the LVM volumes on them are removed.
func (a *Agent) stopMD() []string {
	a.lvmMu.Lock()
	defer a.lvmMu.Unlock()
	var problems []string
	for i := len(a.mdActive) - 1; i >= 0; i-- {
		arr := a.mdActive[i]
		for _, l := range arr.links {
			_ = os.Remove(l)
		}
		f, err := os.OpenFile(arr.node, os.O_RDONLY, 0)
		if err != nil {
			problems = append(problems, fmt.Sprintf("stopping md array %s: %v", arr.node, unwrapErrno(err)))
			continue
		}
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), mdIoctlStopArray, 0); e != 0 {
			problems = append(problems, fmt.Sprintf("stopping md array %s: %v", arr.node, e))
		}
		f.Close()
	}
	_ = os.Remove("/dev/md") // only when empty
	a.mdActive = nil
	return problems
}
