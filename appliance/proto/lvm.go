package proto

import "strings"

// TypeLVMPV is the Filesystem.Type of an LVM physical volume (blkid's
// name for it).
const TypeLVMPV = "LVM2_member"

// MapperDir holds the device-mapper nodes. An active LVM logical volume is
// LVDevice(VG, LV) there, which is what Filesystem.Device and
// LogicalVolume.Device name.
const MapperDir = "/dev/mapper"

// DMName is the device-mapper name LVM gives logical volume lv of volume
// group vg: VG-LV with every '-' in either name doubled, so the name splits
// back unambiguously ("my-vg", "root" → "my--vg-root").
func DMName(vg, lv string) string {
	return strings.ReplaceAll(vg, "-", "--") + "-" + strings.ReplaceAll(lv, "-", "--")
}

// MapperPath is the node of the device-mapper device name.
func MapperPath(name string) string { return MapperDir + "/" + name }

// LVDevice is the node of an active logical volume: /dev/mapper/VG-LV.
func LVDevice(vg, lv string) string { return MapperPath(DMName(vg, lv)) }
