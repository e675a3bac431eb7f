package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/imgbake/imgbake/appliance/proto"
)

// LVM activation in the agent. There is no udev and, in the main
// initramfs, no lvm: the agent reads the metadata itself (lvm_meta.go),
// loads the tables with device-mapper ioctls and makes the nodes
// /dev/mapper/VG-LV and /dev/VG/LV. Everything it activated is removed
// again before power-off, so nothing holds the disks when the image is
// committed.

// dmControl is the device-mapper control node (devtmpfs creates it when
// dm_mod loads).
const dmControl = proto.MapperDir + "/control"

// foundVG is a volume group with the devices of its PVs.
type foundVG struct {
	vg      *lvmVG
	devs    map[string]string // metadata PV name → appliance device
	missing []string          // PV ids not found
}

// scanLVM reads the labels and metadata of the LVM2_member devices and
// returns the volume groups, newest metadata per VG, sorted by name.
func scanLVM(fss []proto.Filesystem) ([]*foundVG, []string) {
	var warnings []string
	pvDev := map[string]string{} // PV uuid (no dashes) → device
	vgs := map[string]*lvmVG{}   // VG id → newest metadata
	for _, fs := range fss {
		if fs.Type != proto.TypeLVMPV {
			continue
		}
		vg, uuid, err := readPV(fs.Device)
		if err != nil {
			warnings = append(warnings, fmt.Sprintf("LVM physical volume %s: %v", fs.Device, err))
			continue
		}
		pvDev[uuid] = fs.Device
		if vg == nil {
			continue // a PV in no VG, or its metadata copies are elsewhere
		}
		if old, ok := vgs[vg.id]; !ok || vg.seqno > old.seqno {
			vgs[vg.id] = vg
		}
	}
	var out []*foundVG
	for _, vg := range vgs {
		f := &foundVG{vg: vg, devs: map[string]string{}}
		for _, pn := range vg.pvNames {
			id := strings.ReplaceAll(vg.pvs[pn].id, "-", "")
			if d, ok := pvDev[id]; ok {
				f.devs[pn] = d
			} else {
				f.missing = append(f.missing, vg.pvs[pn].id)
			}
		}
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].vg.name < out[j].vg.name })
	return out, warnings
}

// readPV returns the VG described by the PV's metadata (nil if none) and
// the PV's uuid.
func readPV(dev string) (*lvmVG, string, error) {
	f, err := os.Open(dev)
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	lb, err := readPVLabel(f)
	if err != nil {
		return nil, "", err
	}
	var firstErr error
	var best *lvmVG
	for _, mda := range lb.mdas {
		text, err := readMetadataArea(f, mda)
		if err == nil && text != nil {
			var sec *lvmSection
			if sec, err = parseLVMText(text); err == nil {
				var vg *lvmVG
				if vg, err = parseVG(sec); err == nil && (best == nil || vg.seqno > best.seqno) {
					best = vg
				}
			}
		}
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	if best == nil && firstErr != nil {
		return nil, lb.uuid, firstErr
	}
	return best, lb.uuid, nil
}

// activateLVM finds the volume groups on the LVM2_member devices of fss
// and, when activate is set, maps their visible logical volumes. It
// returns what it found for the host, and warnings.
func (a *Agent) activateLVM(fss []proto.Filesystem, activate bool) ([]proto.VolumeGroup, []string) {
	found, warnings := scanLVM(fss)
	if len(found) == 0 {
		return nil, warnings
	}
	if activate {
		a.ensureFSModules(proto.ModulesDM)
		if _, err := os.Stat(dmControl); err != nil {
			warnings = append(warnings, fmt.Sprintf("LVM volumes not activated: no device-mapper (%s: %v; is dm_mod in the appliance?)", dmControl, unwrapErrno(err)))
			activate = false
		}
	}
	var out []proto.VolumeGroup
	for _, f := range found {
		vg := f.vg
		ext := int64(vg.extentSize) * lvmSector
		pv := proto.VolumeGroup{Name: vg.name, UUID: vg.id, ExtentSize: ext, MissingPVs: f.missing, LVs: []proto.LogicalVolume{}}
		var used, total uint64
		for _, pn := range vg.pvNames {
			total += vg.pvs[pn].peCount
			if d, ok := f.devs[pn]; ok {
				pv.PVs = append(pv.PVs, d)
			}
		}
		// Snapshot origins: writing one without the snapshot-origin target
		// would corrupt its snapshots, so they are mapped read-only.
		origins := map[string]bool{}
		for _, lv := range vg.lvs {
			used += lv.extents()
			for _, s := range lv.segs {
				if s.typ == "snapshot" && s.origin != "" {
					origins[s.origin] = true
				}
			}
		}
		pv.Size, pv.Free = int64(total)*ext, int64(total-min(used, total))*ext
		if len(f.missing) > 0 {
			warnings = append(warnings, fmt.Sprintf("LVM volume group %s: physical volume(s) %s not found", vg.name, strings.Join(f.missing, ", ")))
		}
		for _, lv := range vg.lvs {
			if !hasFlag(lv.status, "VISIBLE") {
				continue // internal volumes: pool metadata, mirror legs, snapshot COW
			}
			info := proto.LogicalVolume{Name: lv.name, VG: vg.name, UUID: lv.id, Size: int64(lv.extents()) * ext, Type: lv.segType()}
			ro := !vg.writable || !hasFlag(lv.status, "WRITE") || a.readOnly
			for _, d := range f.devs {
				ro = ro || deviceReadOnly(d)
			}
			if origins[lv.name] {
				ro = true
				info.Note = "has snapshots: mapped read-only"
			}
			table, err := vg.table(lv, func(p string) (string, bool) {
				d, ok := f.devs[p]
				if !ok {
					return "", false
				}
				var st unix.Stat_t
				if unix.Stat(d, &st) != nil {
					return "", false
				}
				return fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev)), true
			})
			switch {
			case err != nil:
				info.Note = err.Error()
				warnings = append(warnings, fmt.Sprintf("LVM volume %s/%s not activated: %v", vg.name, lv.name, err))
			case activate:
				dev, err := a.dmActivate(proto.DMName(vg.name, lv.name), dmUUID(vg.id, lv.id), table, ro)
				if err != nil {
					info.Note = err.Error()
					warnings = append(warnings, fmt.Sprintf("LVM volume %s/%s not activated: %v", vg.name, lv.name, err))
					break
				}
				linkLV(vg.name, lv.name, dev)
				info.Active, info.Device, info.ReadOnly = true, dev, ro
			}
			pv.LVs = append(pv.LVs, info)
		}
		out = append(out, pv)
	}
	return out, warnings
}

// deviceReadOnly reads the kernel's read-only flag of /dev/NAME.
func deviceReadOnly(dev string) bool {
	b, err := os.ReadFile(filepath.Join("/sys/class/block", filepath.Base(dev), "ro"))
	return err == nil && strings.TrimSpace(string(b)) == "1"
}

// dmActivate creates, loads and resumes one device-mapper device and makes
// its /dev/mapper node. A device of that name that is already there (this
// agent activated it for an earlier command) is reused.
func (a *Agent) dmActivate(name, uuid string, table []dmTarget, ro bool) (string, error) {
	return a.dmActivatePayload(name, uuid, dmTablePayload(table), uint32(len(table)), ro, 0)
}

// dmActivatePayload is dmActivate with the table already laid out;
// extraFlags go to the table load (DM_SECURE_DATA_FLAG for a table with a
// key in it: the kernel then wipes its copies).
func (a *Agent) dmActivatePayload(name, uuid string, payload []byte, targets uint32, ro bool, extraFlags uint32) (string, error) {
	node := proto.MapperPath(name)
	a.lvmMu.Lock()
	defer a.lvmMu.Unlock()
	for _, n := range a.dmActive {
		if n == name {
			return node, nil
		}
	}
	res, err := dmIoctl(unix.DM_DEV_CREATE, name, uuid, 0, nil, 0)
	if err != nil {
		return "", fmt.Errorf("device-mapper create %s: %w", name, err)
	}
	devnum := res.Dev
	flags := extraFlags
	if ro {
		flags |= unix.DM_READONLY_FLAG
	}
	if _, err := dmIoctl(unix.DM_TABLE_LOAD, name, "", flags, payload, targets); err != nil {
		_, _ = dmIoctl(unix.DM_DEV_REMOVE, name, "", 0, nil, 0)
		return "", fmt.Errorf("device-mapper load %s: %w", name, err)
	}
	// DM_DEV_SUSPEND without DM_SUSPEND_FLAG resumes: the loaded table goes live.
	if _, err := dmIoctl(unix.DM_DEV_SUSPEND, name, "", 0, nil, 0); err != nil {
		_, _ = dmIoctl(unix.DM_DEV_REMOVE, name, "", 0, nil, 0)
		return "", fmt.Errorf("device-mapper resume %s: %w", name, err)
	}
	a.dmActive = append(a.dmActive, name)
	_ = os.Remove(node)
	mode := uint32(unix.S_IFBLK | 0o600)
	if err := unix.Mknod(node, mode, int(unix.Mkdev(unix.Major(devnum), unix.Minor(devnum)))); err != nil {
		return "", fmt.Errorf("mknod %s: %w", node, err)
	}
	return node, nil
}

// linkLV makes /dev/VG/LV, the other name fstab and tools use.
func linkLV(vg, lv, node string) {
	dir := filepath.Join("/dev", vg)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return
	}
	link := filepath.Join(dir, lv)
	_ = os.Remove(link)
	_ = os.Symlink("../mapper/"+filepath.Base(node), link)
}

// deactivateLVM removes every device this agent activated, newest first,
// with their nodes. Called after unmounting, before power-off.
func (a *Agent) deactivateLVM() []string {
	a.lvmMu.Lock()
	defer a.lvmMu.Unlock()
	var problems []string
	for i := len(a.dmActive) - 1; i >= 0; i-- {
		name := a.dmActive[i]
		if _, err := dmIoctl(unix.DM_DEV_REMOVE, name, "", 0, nil, 0); err != nil {
			problems = append(problems, fmt.Sprintf("removing device-mapper device %s: %v", name, err))
			continue
		}
		_ = os.Remove(proto.MapperPath(name))
	}
	for _, vg := range a.lvmVGs {
		for _, lv := range vg.LVs {
			_ = os.Remove(filepath.Join("/dev", vg.Name, lv.Name))
		}
		_ = os.Remove(filepath.Join("/dev", vg.Name)) // only when empty
	}
	a.dmActive, a.lvmVGs = nil, nil
	a.cryptAliases = nil
	return problems
}

// dmTablePayload lays out the targets as DM_TABLE_LOAD wants them: each a
// struct dm_target_spec, its parameter string and padding to 8 bytes.
func dmTablePayload(table []dmTarget) []byte {
	var out []byte
	specSize := int(unsafe.Sizeof(unix.DmTargetSpec{}))
	for _, t := range table {
		n := specSize + len(t.params) + 1
		n = (n + 7) &^ 7
		b := make([]byte, n)
		spec := (*unix.DmTargetSpec)(unsafe.Pointer(&b[0]))
		spec.Sector_start = t.start
		spec.Length = t.length
		spec.Next = uint32(n)
		copy(spec.Target_type[:len(spec.Target_type)-1], t.typ)
		copy(b[specSize:], t.params)
		out = append(out, b...)
	}
	return out
}

// dmIoctl sends one device-mapper ioctl for the device name.
func dmIoctl(cmd uintptr, name, uuid string, flags uint32, payload []byte, targets uint32) (*unix.DmIoctl, error) {
	hdr := int(unsafe.Sizeof(unix.DmIoctl{}))
	size := hdr + len(payload)
	if size < 16<<10 {
		size = 16 << 10 // room for what the kernel writes back
	}
	// Backed by uint64s: the kernel structures need 8-byte alignment.
	words := make([]uint64, (size+7)/8)
	buf := unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), size)
	io := (*unix.DmIoctl)(unsafe.Pointer(&words[0]))
	io.Version = [3]uint32{unix.DM_VERSION_MAJOR, 0, 0}
	io.Data_size = uint32(size)
	io.Data_start = uint32(hdr)
	io.Flags = flags
	io.Target_count = targets
	if len(name) >= len(io.Name) || len(uuid) >= len(io.Uuid) {
		return nil, errors.New("device-mapper name or uuid too long")
	}
	copy(io.Name[:], name)
	copy(io.Uuid[:], uuid)
	copy(buf[hdr:], payload)
	fd, err := unix.Open(dmControl, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	if flags&unix.DM_SECURE_DATA_FLAG != 0 {
		defer clear(words) // a crypt table holds the volume key
	}
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), cmd, uintptr(unsafe.Pointer(&words[0]))); e != 0 {
		return nil, e
	}
	res := *io
	return &res, nil
}
