package proto

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
}

// ProbeResult lists the devices the appliance sees.
type ProbeResult struct {
	Filesystems []Filesystem `json:"filesystems"`
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
