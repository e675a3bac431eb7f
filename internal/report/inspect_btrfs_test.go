package report

import (
	"bytes"
	"strings"
	"testing"

	"github.com/imgbake/imgbake/appliance/proto"
	"github.com/imgbake/imgbake/fsops"
)

// TestInspectPrintBtrfs: the plain output lists each btrfs filesystem's
// subvolumes (the default one marked), the subvolume mounted at each
// mountpoint and an OS found in a subvolume; names from the image are
// escaped.
func TestInspectPrintBtrfs(t *testing.T) {
	rep := &fsops.Inspection{
		OS: fsops.InspectedOS{ID: "opensuse-leap", VersionID: "15.5", Root: "/dev/vda2", RootSubvolume: "@/.snapshots/1/snapshot"},
		Filesystems: []proto.Filesystem{{Device: "/dev/vda2", Type: "btrfs", Size: 1 << 30, DefaultSubvolume: "@/.snapshots/1/snapshot",
			Subvolumes: []proto.Subvolume{{ID: 256, Parent: 5, Path: "@"}, {ID: 258, Parent: 257, Path: "@/.snapshots/1/snapshot"},
				{ID: 259, Parent: 256, Path: "@/home\x1b[2J"}}}},
		Mountpoints: map[string]string{"/": "/dev/vda2", "/home": "/dev/vda2", "/boot": "/dev/vda1"},
		Subvolumes:  map[string]string{"/": "@/.snapshots/1/snapshot", "/home": "@/home\x1b[2J"},
		OperatingSystems: []proto.OSRoot{
			{Device: "/dev/vda2", ID: "opensuse-leap", PrettyName: "openSUSE Leap 15.5", Mountpoint: "/", Subvolume: "@/.snapshots/1/snapshot"},
			{Device: "/dev/vdb3", ID: "fedora", PrettyName: "Fedora Linux 39", Subvolume: "root"},
		},
	}
	var out bytes.Buffer
	Inspection(&out, rep)
	got := out.String()
	for _, want := range []string{
		"             subvolume 256 @\n",
		"             subvolume 258 @/.snapshots/1/snapshot (default)\n",
		"             subvolume 259 \"@/home\\x1b[2J\"\n",
		"  /            /dev/vda2 subvol=/@/.snapshots/1/snapshot",
		"  /home        /dev/vda2 subvol=\"/@/home\\x1b[2J\"",
		"  /boot        /dev/vda1\n",
		"  /dev/vdb3              Fedora Linux 39, hostname \"\" (not mounted, subvolume root)\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "\x1b") {
		t.Errorf("escape sequence from the image printed raw:\n%q", got)
	}
}
