package agent

import (
	"reflect"
	"testing"

	"golang.org/x/sys/unix"
)

func TestTrimTargets(t *testing.T) {
	mountinfo := `22 1 0:21 / /proc rw,nosuid - proc proc rw
30 1 254:0 / /sysroot rw,relatime - ext4 /dev/vda rw
31 30 254:16 / /sysroot/boot rw,relatime shared:1 - ext4 /dev/vdb1 rw
32 30 254:17 / /sysroot/boot/efi ro,relatime - vfat /dev/vdb2 ro
33 30 254:16 /x /sysroot/srv/x rw,relatime - ext4 /dev/vdb1 rw
34 30 0:5 / /sysroot/dev rw - devtmpfs devtmpfs rw
35 30 0:22 / /sysroot/proc rw - proc proc rw
36 30 0:30 / /sysroot/tmp rw - tmpfs tmpfs rw
37 30 254:18 / /sysroot/home\040dir rw - xfs /dev/vdb3 rw
38 30 254:19 / /sysrootx rw - ext4 /dev/vdb4 rw
garbage line
`
	want := []trimTarget{
		{"/sysroot", "ext4"},
		{"/sysroot/boot", "ext4"},
		{"/sysroot/home dir", "xfs"},
	}
	if got := trimTargets(mountinfo); !reflect.DeepEqual(got, want) {
		t.Errorf("trimTargets =\n%v\nwant\n%v", got, want)
	}
}

func TestParseMountOptions(t *testing.T) {
	for _, c := range []struct {
		in    string
		flags uintptr
		data  string
		ok    bool
	}{
		{"", 0, "", true},
		{"defaults,nofail,x-systemd.automount,comment=x", 0, "", true},
		{"noatime,subvol=root,compress=zstd:1", unix.MS_NOATIME, "subvol=root,compress=zstd:1", true},
		{"ro,nodev,nosuid,noexec", unix.MS_RDONLY | unix.MS_NODEV | unix.MS_NOSUID | unix.MS_NOEXEC, "", true},
		{"errors=remount-ro", 0, "errors=remount-ro", true},
		{"bad\x00opt", 0, "", false},
	} {
		flags, data, err := parseMountOptions(c.in)
		if (err == nil) != c.ok || flags != c.flags || data != c.data {
			t.Errorf("parseMountOptions(%q) = %#x, %q, %v; want %#x, %q ok=%v", c.in, flags, data, err, c.flags, c.data, c.ok)
		}
	}
	if got := subvolumeOptions("btrfs", "subvol=/@/home,compress=zstd:1,subvolid=257,noatime"); got != "subvol=/@/home,subvolid=257" {
		t.Errorf("subvolumeOptions = %q", got)
	}
	if got := subvolumeOptions("ext4", "subvol=x"); got != "" {
		t.Errorf("subvolumeOptions(ext4) = %q", got)
	}
}
