package agent

import (
	"reflect"
	"testing"

	"github.com/imgbake/imgbake/appliance/proto"
)

func TestDiskLinks(t *testing.T) {
	fss := []proto.Filesystem{
		{Device: "/dev/vda1", Type: "vfat", UUID: "5EA1-E5B0", PartUUID: "1d3e-01", PartLabel: "EFI System"},
		{Device: "/dev/vda2", Type: proto.TypeLVMPV, UUID: "pv-uuid", PartUUID: "1d3e-02"},
		{Device: "/dev/mapper/vg0-root", Type: "ext4", UUID: "5ea1b0d0-0000", Label: "root/fs"},
		{Device: "/dev/vdb", Type: "", PartUUID: ""},
	}
	nodes := map[string]string{"/dev/vda1": "vda1", "/dev/vda2": "vda2", "/dev/mapper/vg0-root": "dm-0", "/dev/vdb": "vdb"}
	paths := map[string]string{"vda": "pci-0000:01:00.0", "vdb": "pci-0000:02:00.0"}
	got := diskLinks(fss, []string{"vda", "vda1", "vda2", "vdb", "dm-0"},
		func(d string) string { return nodes[d] }, func(n string) string { return paths[n] })
	want := []diskLink{
		{"by-uuid", "5EA1-E5B0", "vda1"},
		{"by-partuuid", "1d3e-01", "vda1"},
		{"by-partlabel", `EFI\x20System`, "vda1"},
		{"by-partuuid", "1d3e-02", "vda2"}, // an LVM member has no by-uuid link
		{"by-uuid", "5ea1b0d0-0000", "dm-0"},
		{"by-label", `root\x2ffs`, "dm-0"},
		{"by-path", "pci-0000:01:00.0", "vda"},
		{"by-path", "pci-0000:01:00.0-part1", "vda1"},
		{"by-path", "pci-0000:01:00.0-part2", "vda2"},
		{"by-path", "pci-0000:02:00.0", "vdb"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("diskLinks:\n got %q\nwant %q", got, want)
	}
}

func TestUdevEncode(t *testing.T) {
	for in, want := range map[string]string{
		"rootfs":      "rootfs",
		"my disk":     `my\x20disk`,
		"a/b\\c":      `a\x2fb\x5cc`,
		"x#+-.:=@_y":  "x#+-.:=@_y",
		"données":     "données",
		"tab\there\n": `tab\x09here\x0a`,
	} {
		if got := udevEncode(in); got != want {
			t.Errorf("udevEncode(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestAncestors(t *testing.T) {
	if got, want := ancestors("/run/systemd/resolve"), []string{"/run", "/run/systemd", "/run/systemd/resolve"}; !reflect.DeepEqual(got, want) {
		t.Errorf("ancestors = %q, want %q", got, want)
	}
}
