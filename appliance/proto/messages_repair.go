package proto

import (
	"fmt"
	"path"
)

// Operations for looking at and repairing a broken image.
const (
	// OpReadDir lists a directory of the mounted image (PathArgs; a final
	// symlink is followed inside the root, like ls DIR). The entries stream
	// back as TData, one JSON DirEntry per line, then TEOF; the result is a
	// ReadDirResult.
	OpReadDir = "readdir"
	// OpProbe lists the block devices and their filesystems without
	// mounting anything (for fsck, which must run on unmounted devices).
	OpProbe = "probe"
	// OpFSUsage reports statfs figures of every mounted filesystem.
	OpFSUsage = "fs_usage"
	// OpFstabCheck resolves every entry of the image's /etc/fstab against
	// the devices found, the way mount does.
	OpFstabCheck = "fstab_check"
	// OpReplayLog mounts one unmounted device read-write and unmounts it
	// again, so the kernel replays its journal or log (xfs_repair refuses a
	// filesystem with a dirty log). ReplayLogArgs; answers ChangeResult.
	OpReplayLog = "replay_log"
)

// DirEntry is one entry of a directory listing (lstat of the entry).
type DirEntry struct {
	Name string `json:"name"`
	StatResult
	// RawName and RawTarget carry the exact bytes of a name or symlink
	// target that is not valid UTF-8 (JSON strings would mangle it).
	RawName   []byte `json:"raw_name,omitempty"`
	RawTarget []byte `json:"raw_target,omitempty"`
}

// ReadDirResult ends a directory listing.
type ReadDirResult struct {
	Count int `json:"count"`
}

// ProbeArgs says how many disks to wait for (hot-plugged after a warm
// start), as MountArgs.Disks.
type ProbeArgs struct {
	Disks int `json:"disks,omitempty"`
	// VolumeKeys open LUKS volumes, as MountArgs.VolumeKeys.
	VolumeKeys []LUKSVolumeKey `json:"volume_keys,omitempty"`
}

// ProbeResult lists the devices the appliance sees.
type ProbeResult struct {
	Filesystems  []Filesystem  `json:"filesystems"`
	VolumeGroups []VolumeGroup `json:"volume_groups,omitempty"`
	Warnings     []string      `json:"warnings,omitempty"`
	LUKS         []LUKSVolume  `json:"luks,omitempty"`
}

// FSUsage is statfs of one mounted filesystem.
type FSUsage struct {
	Mountpoint  string `json:"mountpoint"`
	Device      string `json:"device"`
	Type        string `json:"type"`
	Size        uint64 `json:"size"`  // bytes
	Used        uint64 `json:"used"`  // bytes
	Avail       uint64 `json:"avail"` // bytes available to unprivileged users
	Inodes      uint64 `json:"inodes,omitempty"`
	InodesFree  uint64 `json:"inodes_free,omitempty"`
	ReadOnly    bool   `json:"read_only,omitempty"`
	StatfsError string `json:"error,omitempty"`
}

// FSUsageResult lists the usage of every mounted filesystem.
type FSUsageResult struct {
	Filesystems []FSUsage `json:"filesystems"`
}

// Fstab entry states in a FstabReport.
const (
	FstabOK         = "ok"         // the device is there
	FstabMissing    = "missing"    // no device matches the spec
	FstabUnverified = "unverified" // a device name imgbake cannot map (nvme, md, LVM, ...)
	FstabSkipped    = "skipped"    // pseudo, network or bind entries
)

// FstabEntry is one entry of the image's /etc/fstab and what it resolves to.
type FstabEntry struct {
	Line       int    `json:"line"` // 1-based line number in /etc/fstab
	Spec       string `json:"spec"`
	Mountpoint string `json:"mountpoint"`
	Type       string `json:"type"`
	Options    string `json:"options,omitempty"`
	Status     string `json:"status"`           // FstabOK, FstabMissing, ...
	Device     string `json:"device,omitempty"` // the device it resolved to
	FSType     string `json:"fstype,omitempty"` // what the device holds
	Note       string `json:"note,omitempty"`
}

// FstabMissingWarning is the mount warning for the fstab entry at line
// whose spec names no device of the image. inspect adds the FstabMissing
// entries of a FstabReport to the mount's warnings in these words, so that
// each entry is warned about once.
func FstabMissingWarning(line int, spec, mountpoint string) string {
	return fmt.Sprintf("/etc/fstab line %d: %s for %s: no such device in the image", line, spec, path.Clean(mountpoint))
}

// FstabReport is the image's /etc/fstab, resolved. Exists is false when the
// image has no /etc/fstab.
type FstabReport struct {
	Exists  bool         `json:"exists"`
	Entries []FstabEntry `json:"entries"`
}

// ReplayLogArgs names the device whose journal or log to replay.
type ReplayLogArgs struct {
	Device string `json:"device"`
	Type   string `json:"type"`
}

// OpListOS reports every filesystem that holds an operating system root
// (multi-boot images), not only the one mounted as /. Needs a mount;
// answers ListOSResult.
const OpListOS = "list_os"

// OSRoot is one operating system found on a filesystem of the image.
type OSRoot struct {
	Device     string `json:"device"`
	Type       string `json:"type"`
	ID         string `json:"id"`
	VersionID  string `json:"version_id,omitempty"`
	PrettyName string `json:"pretty_name,omitempty"`
	Hostname   string `json:"hostname,omitempty"`
	// Mountpoint is where the filesystem is mounted in the open image ("/"
	// for the root imgbake works on), empty when it is not mounted.
	Mountpoint string `json:"mountpoint,omitempty"`
	// Subvolume is the btrfs subvolume holding the OS root.
	Subvolume string `json:"subvolume,omitempty"`
}

// ListOSResult lists the operating systems found, in device order.
type ListOSResult struct {
	OSes []OSRoot `json:"oses"`
	// Problems are filesystems that could not be looked at.
	Problems []string `json:"problems,omitempty"`
}

// VolumeGroup is an LVM volume group found on the disks.
type VolumeGroup struct {
	Name       string `json:"name"`
	UUID       string `json:"uuid"`
	ExtentSize int64  `json:"extent_size"` // bytes
	Size       int64  `json:"size"`        // bytes in all physical volumes' extents
	Free       int64  `json:"free"`        // bytes in extents no LV uses
	// PVs are the appliance devices holding the VG's physical volumes;
	// MissingPVs the UUIDs of those not found.
	PVs        []string        `json:"pvs"`
	MissingPVs []string        `json:"missing_pvs,omitempty"`
	LVs        []LogicalVolume `json:"lvs"`
}

// LogicalVolume is one visible LVM logical volume.
type LogicalVolume struct {
	Name string `json:"name"`
	VG   string `json:"vg"`
	UUID string `json:"uuid"`
	Size int64  `json:"size"` // bytes
	// Type is the segment type: linear, striped, thin, raid1, ...
	Type     string `json:"type"`
	Active   bool   `json:"active"`
	Device   string `json:"device,omitempty"` // /dev/mapper/VG-LV when active
	ReadOnly bool   `json:"read_only,omitempty"`
	Note     string `json:"note,omitempty"` // why it is not active, or read-only
}
