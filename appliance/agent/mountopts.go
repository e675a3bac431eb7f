package agent

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// Mount options as users write them (-m DEVICE:MOUNTPOINT:OPTIONS, fstab):
// the generic ones are mount(2) flags, the rest go to the filesystem as
// its data string (subvol=root, errors=remount-ro, ...).
var mountFlagOptions = map[string]uintptr{
	"ro": unix.MS_RDONLY, "nosuid": unix.MS_NOSUID, "nodev": unix.MS_NODEV, "noexec": unix.MS_NOEXEC,
	"sync": unix.MS_SYNCHRONOUS, "dirsync": unix.MS_DIRSYNC, "noatime": unix.MS_NOATIME,
	"nodiratime": unix.MS_NODIRATIME, "relatime": unix.MS_RELATIME, "strictatime": unix.MS_STRICTATIME,
	"lazytime": unix.MS_LAZYTIME,
}

// ignoredMountOptions mean nothing to the kernel here: defaults, the
// boot-time and userspace-only options of fstab.
var ignoredMountOptions = map[string]bool{
	"defaults": true, "rw": true, "auto": true, "noauto": true, "user": true, "nouser": true, "users": true,
	"owner": true, "group": true, "nofail": true, "_netdev": true, "suid": true, "dev": true, "exec": true,
	"async": true, "atime": true, "diratime": true, "norelatime": true, "nostrictatime": true,
}

// parseMountOptions splits options into mount(2) flags and the
// filesystem's data string. Options the kernel must not see (x-systemd.*,
// comment=, nofail, ...) are dropped.
func parseMountOptions(opts string) (uintptr, string, error) {
	var flags uintptr
	var data []string
	for _, o := range strings.Split(opts, ",") {
		o = strings.TrimSpace(o)
		switch {
		case o == "" || ignoredMountOptions[o] || strings.HasPrefix(o, "x-") || strings.HasPrefix(o, "comment="):
		case mountFlagOptions[o] != 0:
			flags |= mountFlagOptions[o]
		case strings.ContainsAny(o, "\x00\n"):
			return 0, "", fmt.Errorf("mount option %q: control characters", o)
		default:
			data = append(data, o)
		}
	}
	return flags, strings.Join(data, ","), nil
}

// subvolumeOptions are the options of an fstab entry that choose what of
// a filesystem is mounted (a btrfs subvolume): without them every entry
// would mount the default subvolume, and writes would land where the
// booted system never looks.
func subvolumeOptions(fstype, opts string) string {
	if fstype != "btrfs" {
		return ""
	}
	var keep []string
	for _, o := range strings.Split(opts, ",") {
		if strings.HasPrefix(o, "subvol=") || strings.HasPrefix(o, "subvolid=") {
			keep = append(keep, o)
		}
	}
	return strings.Join(keep, ",")
}
