package fsops

import (
	"errors"
	"strings"
	"testing"

	"github.com/imgbake/imgbake/appliance/proto"
)

func TestFsckTargets(t *testing.T) {
	fss := []proto.Filesystem{
		{Device: "/dev/vda"}, {Device: "/dev/vda1", Type: "vfat"}, {Device: "/dev/vda2", Type: "ext4"},
		{Device: "/dev/vda3", Type: "swap"}, {Device: "/dev/vdb", Type: "xfs"},
	}
	got, err := FsckTargets(fss, nil)
	if err != nil || len(got) != 3 || got[0].Device != "/dev/vda1" || got[2].Device != "/dev/vdb" {
		t.Errorf("all: %v %v", got, err)
	}
	got, err = FsckTargets(fss, []string{"/dev/vda2"})
	if err != nil || len(got) != 1 || got[0].Type != "ext4" {
		t.Errorf("one: %v %v", got, err)
	}
	if _, err := FsckTargets(fss, []string{"/dev/vdz"}); err == nil || !errors.Is(err, ErrNoDevice) ||
		!strings.Contains(err.Error(), "no device /dev/vdz in the image (devices: /dev/vda, /dev/vda1 (vfat)") {
		t.Errorf("missing device: %v", err)
	}
	if _, err := FsckTargets(fss[:1], nil); !errors.Is(err, ErrNothingToCheck) {
		t.Error("nothing to check was accepted")
	}
	for _, ok := range []string{"vda3", "/dev/vda3", "dm-0", "vdb"} {
		if _, err := DeviceArg(ok); err != nil {
			t.Errorf("DeviceArg(%q): %v", ok, err)
		}
	}
}

func TestFsckDeviceArgLVM(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"vda3", "/dev/vda3"},
		{"/dev/mapper/vg0-root", "/dev/mapper/vg0-root"},
		{"mapper/vg0-root", "/dev/mapper/vg0-root"},
		{"vg0/root", "/dev/mapper/vg0-root"},
		{"/dev/my-vg/lv_1", "/dev/mapper/my--vg-lv_1"},
		{"../root", ""},
		{"vg0/..", ""},
		{"mapper/..", ""},
		{"vg0/root/x", ""},
		{"/dev/mapper/a b", ""},
	} {
		got, err := DeviceArg(tc.in)
		if tc.want == "" {
			if err == nil {
				t.Errorf("DeviceArg(%q) = %q, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("DeviceArg(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}
