package proto

import "testing"

func TestDMName(t *testing.T) {
	for _, tc := range []struct{ vg, lv, want string }{
		{"vg0", "root", "vg0-root"},
		{"my-vg", "lv-1", "my--vg-lv--1"},
		{"a--b", "c", "a----b-c"},
		{"vg", "-", "vg---"},
	} {
		if got := DMName(tc.vg, tc.lv); got != tc.want {
			t.Errorf("DMName(%q, %q) = %q, want %q", tc.vg, tc.lv, got, tc.want)
		}
		if got, want := LVDevice(tc.vg, tc.lv), "/dev/mapper/"+tc.want; got != want {
			t.Errorf("LVDevice(%q, %q) = %q, want %q", tc.vg, tc.lv, got, want)
		}
	}
}
