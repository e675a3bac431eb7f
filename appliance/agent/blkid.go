package agent

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf16"

	"github.com/imgbake/imgbake/appliance/luks"
	"github.com/imgbake/imgbake/appliance/proto"
)

// probeDevice reads the superblock magic of the common Linux filesystems.
// It is deliberately small: the appliance has no libblkid.
func probeDevice(dev string) (proto.Filesystem, error) {
	fs := proto.Filesystem{Device: dev}
	f, err := os.Open(dev)
	if err != nil {
		return fs, err
	}
	defer f.Close()
	buf := make([]byte, 0x10000+0x1000)
	n, _ := f.ReadAt(buf, 0)
	buf = buf[:n]
	fs.Size, _ = f.Seek(0, 2)
	at := func(off, n int) []byte {
		if off+n > len(buf) {
			return nil
		}
		return buf[off : off+n]
	}
	// md RAID first: metadata 1.0 and 0.90 sit at the end of a member
	// whose start is the array's data, a filesystem that must not be
	// mounted on its own. A whole disk with partitions is not searched
	// at its end: a 0.90 superblock there belongs to its last partition.
	if sb, err := readMDSuper(f, fs.Size, !hasPartitions(filepath.Base(dev))); err == nil {
		fs.Type = proto.TypeMDMember
		fs.UUID = sb.UUID()
		fs.Label = sb.name
		return fs, nil
	}
	switch {
	case bytes.Equal(at(1024+0x38, 2), []byte{0x53, 0xEF}):
		compat := binary.LittleEndian.Uint32(at(1024+0x5C, 4))
		incompat := binary.LittleEndian.Uint32(at(1024+0x60, 4))
		fs.Type = "ext2"
		if compat&0x4 != 0 {
			fs.Type = "ext3"
		}
		if incompat&(0x40|0x80|0x200) != 0 { // extents, 64bit, flex_bg
			fs.Type = "ext4"
		}
		fs.UUID = formatUUID(at(1024+0x68, 16))
		fs.Label = cString(at(1024+0x78, 16))
	case bytes.Equal(at(0, 4), []byte("XFSB")):
		fs.Type = "xfs"
		fs.UUID = formatUUID(at(32, 16))
		fs.Label = cString(at(108, 12))
	case bytes.Equal(at(0x10040, 8), []byte("_BHRfS_M")):
		fs.Type = "btrfs"
		fs.UUID = formatUUID(at(0x10020, 16))
		fs.Label = cString(at(0x1012b, 256))
	case bytes.Equal(at(4086, 10), []byte("SWAPSPACE2")) || bytes.Equal(at(4086, 10), []byte("SWAP-SPACE")):
		fs.Type = "swap"
		fs.UUID = formatUUID(at(1024+12, 16))
		fs.Label = cString(at(1024+28, 16))
	case bytes.Equal(at(512, 8), []byte("LABELONE")) && bytes.Equal(at(512+24, 8), []byte("LVM2 001")):
		fs.Type = proto.TypeLVMPV
	case luks.IsLUKS(at(0, 208)):
		fs.Type = proto.TypeLUKS
		fs.UUID = luks.UUIDOf(at(0, 208))
	case bytes.Equal(at(510, 2), []byte{0x55, 0xAA}) && bytes.Equal(at(0x52, 5), []byte("FAT32")):
		fs.Type = "vfat"
		fs.UUID = fatSerial(at(0x43, 4))
		fs.Label = fatLabel(at(0x47, 11))
	case bytes.Equal(at(510, 2), []byte{0x55, 0xAA}) && (bytes.Equal(at(0x36, 4), []byte("FAT1")) || bytes.Equal(at(0x36, 3), []byte("FAT"))):
		fs.Type = "vfat"
		fs.UUID = fatSerial(at(0x27, 4))
		fs.Label = fatLabel(at(0x2B, 11))
	}
	return fs, nil
}

func formatUUID(b []byte) string {
	if len(b) != 16 || bytes.Equal(b, make([]byte, 16)) {
		return ""
	}
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// formatGUID prints a GPT GUID, whose first three fields are little-endian.
func formatGUID(b []byte) string {
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x",
		binary.LittleEndian.Uint32(b[0:4]), binary.LittleEndian.Uint16(b[4:6]),
		binary.LittleEndian.Uint16(b[6:8]), b[8:10], b[10:16])
}

func fatSerial(b []byte) string {
	if len(b) != 4 {
		return ""
	}
	v := binary.LittleEndian.Uint32(b)
	return fmt.Sprintf("%04X-%04X", v>>16, v&0xffff)
}

func fatLabel(b []byte) string {
	l := strings.TrimRight(string(b), " \x00")
	if l == "NO NAME" {
		return ""
	}
	return l
}

func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return strings.TrimSpace(string(b))
}

// partInfo is what the partition table says about one partition.
type partInfo struct {
	uuid, label string
}

// readPartitionTable returns PARTUUID/PARTLABEL by partition number for a
// whole disk: GPT entries or, for MBR, the disk signature scheme.
func readPartitionTable(disk string) map[int]partInfo {
	out := map[int]partInfo{}
	f, err := os.Open(disk)
	if err != nil {
		return out
	}
	defer f.Close()
	const sector = 512
	hdr := make([]byte, 2*sector)
	if _, err := f.ReadAt(hdr, 0); err != nil {
		return out
	}
	if bytes.Equal(hdr[sector:sector+8], []byte("EFI PART")) {
		h := hdr[sector:]
		entLBA := int64(binary.LittleEndian.Uint64(h[72:80]))
		num := int(binary.LittleEndian.Uint32(h[80:84]))
		size := int(binary.LittleEndian.Uint32(h[84:88]))
		if num <= 0 || num > 1024 || size < 128 || size > 4096 {
			return out
		}
		ents := make([]byte, num*size)
		if _, err := f.ReadAt(ents, entLBA*sector); err != nil {
			return out
		}
		for i := 0; i < num; i++ {
			e := ents[i*size : (i+1)*size]
			if bytes.Equal(e[0:16], make([]byte, 16)) {
				continue
			}
			u16 := make([]uint16, 36)
			for j := range u16 {
				u16[j] = binary.LittleEndian.Uint16(e[56+2*j:])
			}
			label := string(utf16.Decode(u16))
			if k := strings.IndexByte(label, 0); k >= 0 {
				label = label[:k]
			}
			out[i+1] = partInfo{uuid: formatGUID(e[16:32]), label: label}
		}
		return out
	}
	if bytes.Equal(hdr[510:512], []byte{0x55, 0xAA}) {
		sig := binary.LittleEndian.Uint32(hdr[440:444])
		for i := 1; i <= 16; i++ {
			out[i] = partInfo{uuid: fmt.Sprintf("%08x-%02x", sig, i)}
		}
	}
	return out
}

// blockDevices lists the appliance's disks and partitions in a stable
// order: vda, vda1, vda2, ..., vdb, ...
func blockDevices() []string {
	ents, _ := os.ReadDir("/sys/class/block")
	var names []string
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, "vd") || strings.HasPrefix(n, "sd") || strings.HasPrefix(n, "dm-") || strings.HasPrefix(n, "md") {
			names = append(names, n)
		}
	}
	sort.Slice(names, func(i, j int) bool { return devLess(names[i], names[j]) })
	return names
}

func devLess(a, b string) bool {
	da, pa := splitDev(a)
	db, pb := splitDev(b)
	if da != db {
		if len(da) != len(db) {
			return len(da) < len(db)
		}
		return da < db
	}
	return pa < pb
}

func splitDev(n string) (string, int) {
	i := len(n)
	for i > 0 && n[i-1] >= '0' && n[i-1] <= '9' {
		i--
	}
	if strings.HasPrefix(n, "dm-") {
		return n, 0
	}
	p, _ := strconv.Atoi(n[i:])
	return n[:i], p
}

// hasPartitions says whether block device name is a disk with partitions
// (sysfs lists them as its subdirectories).
func hasPartitions(name string) bool {
	ents, err := os.ReadDir(filepath.Join("/sys/class/block", name))
	if err != nil {
		return false
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), name) {
			return true
		}
	}
	return false
}

// devicePath is the node of block device name: /dev/NAME, or for a
// device-mapper device its /dev/mapper name when that node exists.
func devicePath(name string) string {
	if strings.HasPrefix(name, "dm-") {
		if b, err := os.ReadFile(filepath.Join("/sys/class/block", name, "dm", "name")); err == nil {
			p := proto.MapperPath(strings.TrimSpace(string(b)))
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	return "/dev/" + name
}

// probeStorage probes the block devices. LUKS volumes a volume key is
// given for are opened first (luks.go). When LVM physical volumes are among the
// devices, their volume groups are read and (in the appliance) the
// logical volumes activated and probed as well, so root detection, fstab
// and fsck treat them like partitions.
func (a *Agent) probeStorage(keys []proto.LUKSVolumeKey) ([]proto.Filesystem, []proto.VolumeGroup, []string) {
	fss := probeAll()
	var storageWarnings []string
	if a.pid1 && !a.mdStarted() && slices.ContainsFunc(fss, func(fs proto.Filesystem) bool { return fs.Type == proto.TypeMDMember }) {
		// Only as PID 1, like LVM; once: the arrays stay up until power-off.
		// Before LUKS and LVM, which are often on an array.
		storageWarnings = a.assembleMD(fss)
		fss = probeAll()
	}
	a.luksVols = nil
	if a.openNewLUKS(fss, keys) {
		fss = probeAll() // the opened volumes' filesystems and PVs
	}
	markLUKS(fss, a.luksVols)
	fss, vgs, warnings := a.probeLVM(fss)
	// LUKS inside logical volumes (an encrypted /home on LVM).
	if a.openNewLUKS(fss, keys) {
		fss = probeAll()
		markLUKS(fss, a.luksVols)
		markLVs(fss, vgs)
	}
	a.labelMDArrays(fss)
	for _, v := range a.luksVols {
		if v.Mapping == "" {
			storageWarnings = append(storageWarnings, fmt.Sprintf("LUKS volume %s (%s) is locked: %s", v.Device, v.UUID, v.Problem))
		}
	}
	return fss, vgs, append(storageWarnings, warnings...)
}

// probeLVM activates the LVM volumes on the PVs among fss and returns fss
// with them.
func (a *Agent) probeLVM(fss []proto.Filesystem) ([]proto.Filesystem, []proto.VolumeGroup, []string) {
	hasPV := false
	for _, fs := range fss {
		hasPV = hasPV || fs.Type == proto.TypeLVMPV
	}
	if !hasPV {
		return fss, nil, nil
	}
	// Only as PID 1: in-process tests on the host must not map devices.
	vgs, warnings := a.activateLVM(fss, a.pid1)
	a.lvmMu.Lock()
	a.lvmVGs = vgs
	a.lvmMu.Unlock()
	for _, vg := range vgs {
		for _, lv := range vg.LVs {
			if lv.Device != "" {
				fss = probeAll()
				markLUKS(fss, a.luksVols)
				markLVs(fss, vgs)
				return fss, vgs, warnings
			}
		}
	}
	return fss, vgs, warnings
}

// markLVs names the logical volume of every active LV among fss.
func markLVs(fss []proto.Filesystem, vgs []proto.VolumeGroup) {
	byDev := map[string][2]string{}
	for _, vg := range vgs {
		for _, lv := range vg.LVs {
			if lv.Device != "" {
				byDev[lv.Device] = [2]string{vg.Name, lv.Name}
			}
		}
	}
	for i := range fss {
		if n, ok := byDev[fss[i].Device]; ok {
			fss[i].VG, fss[i].LV = n[0], n[1]
		}
	}
}

// probeAll probes every block device and fills in partition-table names.
func probeAll() []proto.Filesystem {
	var out []proto.Filesystem
	tables := map[string]map[int]partInfo{}
	for _, n := range blockDevices() {
		fs, err := probeDevice(devicePath(n))
		if err != nil {
			continue
		}
		if pn, err := os.ReadFile(filepath.Join("/sys/class/block", n, "partition")); err == nil {
			disk, num := splitDev(n)
			if _, ok := tables[disk]; !ok {
				tables[disk] = readPartitionTable("/dev/" + disk)
			}
			if p, err := strconv.Atoi(strings.TrimSpace(string(pn))); err == nil {
				num = p
			}
			pi := tables[disk][num]
			fs.PartUUID, fs.PartLabel = pi.uuid, pi.label
		}
		out = append(out, fs)
	}
	return out
}
