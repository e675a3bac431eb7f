package proto

import "encoding/json"

// Version is the agent protocol version; host and agent ship together.
const Version = "0.1.0"

// Operation names understood by the agent.
const (
	OpHello    = "hello"    // liveness and boot figures
	OpMount    = "mount"    // find and mount the image's filesystems
	OpInspect  = "inspect"  // describe the mounted OS
	OpExec     = "exec"     // run a command (chrooted by default)
	OpWrite    = "write"    // atomically write one file from TData
	OpRead     = "read"     // stream one file back as TData
	OpStat     = "stat"     // lstat a path
	OpMkdir    = "mkdir"    // create a directory (and parents)
	OpDelete   = "delete"   // remove a file or tree
	OpTarIn    = "tar_in"   // extract a tar stream into a directory
	OpTarOut   = "tar_out"  // stream a file or tree out as tar
	OpShutdown = "shutdown" // sync, unmount, power off
)

// Call opens a stream.
type Call struct {
	Op   string          `json:"op"`
	Args json.RawMessage `json:"args,omitempty"`
}

// Result closes a stream. Error is empty on success; Errno carries the
// symbolic errno (ENOENT, ENOSPC, ...) when the failure came from a syscall
// so the host can classify it without parsing messages.
type Result struct {
	Error string          `json:"error,omitempty"`
	Errno string          `json:"errno,omitempty"`
	Data  json.RawMessage `json:"data,omitempty"`
}

// Ready is sent once by the agent when its channel is open.
type Ready struct {
	Version   string  `json:"version"`
	Kernel    string  `json:"kernel"`
	UptimeSec float64 `json:"uptime_sec"` // guest uptime when the agent was ready
	InitSec   float64 `json:"init_sec"`   // time the agent spent in its own setup
	Modules   int     `json:"modules"`
}

// MountArgs controls how the image's filesystems are found and mounted.
type MountArgs struct {
	ReadOnly bool `json:"read_only,omitempty"`
	// Disposable says the disks are overlays discarded unless the appliance
	// shuts down cleanly, so a crash never leaves a half-written filesystem
	// behind and journaling buys nothing: ext2/3/4 are mounted without
	// their journal (faster metadata-heavy steps, written once at unmount).
	Disposable bool `json:"disposable,omitempty"`
	// Mounts overrides detection, like guestfish -m DEVICE[:MOUNTPOINT].
	Mounts []MountSpec `json:"mounts,omitempty"`
	// Disks is how many disks are attached; after a snapshot restore they
	// are hot-plugged, and the agent waits for them before probing.
	Disks int `json:"disks,omitempty"`
	// RequireFstab fails the mount when an entry of the root's fstab that
	// is neither noauto nor nofail does not mount (a recipe run would
	// write below its mountpoint on the root filesystem); otherwise that
	// is a warning.
	RequireFstab bool `json:"require_fstab,omitempty"`
	// VolumeKeys open LUKS volumes (recovered on the host from --key);
	// never logged.
	VolumeKeys []LUKSVolumeKey `json:"volume_keys,omitempty"`
}

// MountSpec names a device and where it goes in the image tree.
type MountSpec struct {
	Device     string `json:"device"`
	Mountpoint string `json:"mountpoint"`
	Options    string `json:"options,omitempty"` // mount options, e.g. "subvol=root,noatime"
}

// Filesystem is one probed block device.
type Filesystem struct {
	Device    string `json:"device"`
	Type      string `json:"type"`
	UUID      string `json:"uuid,omitempty"`
	Label     string `json:"label,omitempty"`
	PartUUID  string `json:"partuuid,omitempty"`
	PartLabel string `json:"partlabel,omitempty"`
	Size      int64  `json:"size"`
	// VG and LV name the LVM logical volume the device is (Device is then
	// /dev/mapper/VG-LV).
	VG string `json:"vg,omitempty"`
	LV string `json:"lv,omitempty"`
	// MDArray is the name of the md RAID array the device is (Device is
	// then /dev/mdN), from its metadata ("host:name"); MDLevel its level
	// ("raid1") and MDMembers its member devices.
	MDArray   string   `json:"md_array,omitempty"`
	MDLevel   string   `json:"md_level,omitempty"`
	MDMembers []string `json:"md_members,omitempty"`
	// Subvolumes of a btrfs filesystem that was mounted, and the path of
	// its default subvolume (what a mount without subvol= shows; "" is
	// the top level).
	Subvolumes       []Subvolume `json:"subvolumes,omitempty"`
	DefaultSubvolume string      `json:"default_subvolume,omitempty"`
	// LUKS is the LUKS container an opened volume decrypts (Device is
	// then /dev/mapper/luks-UUID).
	LUKS string `json:"luks,omitempty"`
}

// Subvolume is one btrfs subvolume: its id, its parent's (5 is the top
// level) and its path from the top level ("root", "@/.snapshots/1/snapshot").
type Subvolume struct {
	ID     uint64 `json:"id"`
	Parent uint64 `json:"parent"`
	Path   string `json:"path"`
}

// Mount is one mounted filesystem of the image.
type Mount struct {
	Mountpoint string `json:"mountpoint"`
	Device     string `json:"device"`
	Type       string `json:"type"`
	Options    string `json:"options,omitempty"` // asked for with -m
	// Subvolume is the btrfs subvolume mounted, as a path from the top
	// level ("" for the top level itself, or another filesystem).
	Subvolume string `json:"subvolume,omitempty"`
}

// BindMount is a bind mount of the image's fstab: Source, a path of the
// image, mounted again at Mountpoint.
type BindMount struct {
	Mountpoint string `json:"mountpoint"`
	Source     string `json:"source"`
}

// MountResult reports what was found and mounted.
type MountResult struct {
	Root        string       `json:"root"`
	Filesystems []Filesystem `json:"filesystems"`
	Mounts      []Mount      `json:"mounts"`
	Binds       []BindMount  `json:"binds,omitempty"`
	Warnings    []string     `json:"warnings,omitempty"`
	Tried       []string     `json:"tried,omitempty"` // what was examined when no root was found
	// VolumeGroups are the LVM volume groups found; their logical volumes
	// were activated before the filesystems were probed.
	VolumeGroups []VolumeGroup `json:"volume_groups,omitempty"`
	// LUKS are the encrypted volumes found, opened or not.
	LUKS []LUKSVolume `json:"luks,omitempty"`
	// Phases is where the agent's time went, for -v: "probe 80ms, ...".
	Phases string `json:"phases,omitempty"`
}

// OSInfo describes the mounted operating system.
type OSInfo struct {
	ID         string   `json:"id"` // os-release's ID scheme, whatever file said it
	IDLike     []string `json:"id_like,omitempty"`
	VersionID  string   `json:"version_id"`
	PrettyName string   `json:"pretty_name,omitempty"`
	Family     string   `json:"family,omitempty"` // debian, rhel, suse, ...
	// ReleaseFile is the file the OS was identified by: /etc/os-release,
	// or /etc/redhat-release and the like on older systems.
	ReleaseFile    string `json:"release_file,omitempty"`
	Hostname       string `json:"hostname"`
	Arch           string `json:"arch"`
	PackageManager string `json:"package_manager"`
	PackageFormat  string `json:"package_format,omitempty"` // PkgFormat*
	// PackageDB is the package database found for PackageFormat; empty
	// when the image has none.
	PackageDB string            `json:"package_db,omitempty"`
	OSRelease map[string]string `json:"os_release,omitempty"`
}

// ExecArgs runs a program. With Shell set it runs `/bin/sh -c Shell`.
type ExecArgs struct {
	Argv      []string `json:"argv,omitempty"`
	Shell     string   `json:"shell,omitempty"`
	Env       []string `json:"env,omitempty"` // added to the default environment
	Dir       string   `json:"dir,omitempty"`
	NoChroot  bool     `json:"no_chroot,omitempty"` // run in the appliance, image under /sysroot
	Stdin     bool     `json:"stdin,omitempty"`     // host sends TData/TEOF as stdin
	TimeoutMS int64    `json:"timeout_ms,omitempty"`
	// TTY runs the command on a pseudo-terminal of Rows x Cols (an
	// interactive shell): output comes as TStdout only, input is raw
	// keystrokes, and TControl frames carrying a Winsize resize it.
	TTY  bool   `json:"tty,omitempty"`
	Rows uint16 `json:"rows,omitempty"`
	Cols uint16 `json:"cols,omitempty"`
	Term string `json:"term,omitempty"` // TERM for the command (default xterm)
}

// Winsize is the TControl payload that resizes a TTY command's terminal.
type Winsize struct {
	Rows uint16 `json:"rows"`
	Cols uint16 `json:"cols"`
}

// ExecResult is the outcome of a command.
type ExecResult struct {
	RC       int    `json:"rc"`
	Signal   string `json:"signal,omitempty"`
	TimedOut bool   `json:"timed_out,omitempty"`
}

// WriteArgs describes a file to write; the contents follow as TData.
type WriteArgs struct {
	Path  string  `json:"path"`
	Mode  *uint32 `json:"mode,omitempty"`  // nil: keep existing, else 0644
	Owner string  `json:"owner,omitempty"` // user[:group] resolved in the image
}

// ChangeResult says whether an operation modified the image.
type ChangeResult struct {
	Changed bool `json:"changed"`
}

// PathArgs names one path inside the image.
type PathArgs struct {
	Path string `json:"path"`
}

// MkdirArgs creates a directory.
type MkdirArgs struct {
	Path    string  `json:"path"`
	Mode    *uint32 `json:"mode,omitempty"`
	Owner   string  `json:"owner,omitempty"`
	Parents bool    `json:"parents,omitempty"`
}

// DeleteArgs removes a path.
type DeleteArgs struct {
	Path      string `json:"path"`
	Recursive bool   `json:"recursive,omitempty"`
}

// StatResult is lstat of a path; Exists false means ENOENT.
type StatResult struct {
	Exists  bool   `json:"exists"`
	Mode    uint32 `json:"mode"` // Go fs.FileMode bits
	Size    int64  `json:"size"`
	UID     int    `json:"uid"`
	GID     int    `json:"gid"`
	MTimeNS int64  `json:"mtime_ns"`
	Target  string `json:"target,omitempty"` // symlink target
}

// ReadResult follows the TData of a read.
type ReadResult struct {
	Size int64 `json:"size"`
}

// TarInArgs extracts a tar stream (TData) into Dest, creating Dest.
type TarInArgs struct {
	Dest string `json:"dest"`
	// Staged, when set, is where the tar stream is on the data disk; the
	// call's data stream is then empty.
	Staged *DataRange `json:"staged,omitempty"`
}

// DataRange is a range of the data disk (Offset a multiple of DataAlign).
type DataRange struct {
	Offset int64 `json:"offset"`
	Size   int64 `json:"size"`
}

// A regular file's data may come from the session's data disk instead of
// the tar stream: its header then has size 0 and these PAX records give
// the data's offset on the disk (a multiple of DataAlign) and its size, in
// decimal. The data disk is the virtio disk whose serial is DataDiskSerial.
const (
	PAXDataOffset  = "IMGBAKE.data.offset"
	PAXDataSize    = "IMGBAKE.data.size"
	DataDiskSerial = "imgbake-data"
)

// TarOutArgs streams Path as a tar archive whose entries are relative to
// Path's parent (so the top entry is Path's base name).
type TarOutArgs struct {
	Path string `json:"path"`
}

// TarResult counts what moved.
type TarResult struct {
	Files int   `json:"files"`
	Bytes int64 `json:"bytes"`
}

// PreloadArg on the kernel command line marks a boot that will be saved
// for warm starts: the agent loads the common filesystem drivers before it
// reports ready, so every restore has them.
const PreloadArg = "imgbake.preload"
