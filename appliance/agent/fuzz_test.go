package agent

import (
	"testing"

	"github.com/imgbake/imgbake/appliance/fstab"
)

// FuzzOrderFstab orders a hostile image's fstab and checks: it ends; each
// mountable entry comes out exactly once and nothing else does; a
// mountpoint comes after every mountpoint above it, unless a bind mount
// puts the two in a cycle.
func FuzzOrderFstab(f *testing.F) {
	f.Add([]byte("UUID=e /boot/efi vfat d\nLABEL=boot /boot ext4 d\n/home/s /srv/s none bind\nUUID=h /home ext4 d\nx none swap sw\n"))
	f.Add([]byte("/x/s /y none bind\n/y/s /x none bind\na /y/z ext4 noauto\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		entries := fstab.Parse(data)
		if len(entries) > 64 {
			entries = entries[:64] // ordering costs the cube of the count
		}
		var want []int
		for _, e := range entries {
			if mountable(e) {
				want = append(want, e.Line)
			}
		}
		got := orderFstab(entries)
		if len(got) != len(want) {
			t.Fatalf("%d entries ordered, want %d", len(got), len(want))
		}
		seen := map[int]bool{}
		binds := false
		for _, e := range got {
			if seen[e.Line] || !mountable(e) {
				t.Fatalf("line %d twice, or not mountable: %+v", e.Line, e)
			}
			seen[e.Line] = true
			binds = binds || isBind(e)
		}
		if binds {
			return
		}
		for i, a := range got {
			for _, b := range got[i+1:] {
				if below(a.File, b.File) {
					t.Fatalf("%s (line %d) before %s (line %d), which it lies on", a.File, a.Line, b.File, b.Line)
				}
			}
		}
	})
}
