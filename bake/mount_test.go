package bake

import "testing"

func TestParseMount(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Mount
		ok   bool
	}{
		{"/dev/vda2", Mount{Device: "/dev/vda2"}, true},
		{"/dev/vda1:/boot", Mount{Device: "/dev/vda1", Mountpoint: "/boot"}, true},
		{"/dev/vda2:/:subvol=root,compress=zstd:1", Mount{Device: "/dev/vda2", Mountpoint: "/", Options: "subvol=root,compress=zstd:1"}, true},
		{"vg0/root::noatime", Mount{Device: "vg0/root", Options: "noatime"}, true},
		{":/boot", Mount{}, false},
		{"/dev/vda1:boot", Mount{}, false},
		{"/dev/vda1:/:a b", Mount{}, false},
	} {
		got, err := ParseMount(c.in)
		if (err == nil) != c.ok || (c.ok && got != c.want) {
			t.Errorf("ParseMount(%q) = %+v, %v; want %+v ok=%v", c.in, got, err, c.want, c.ok)
		}
	}
}
