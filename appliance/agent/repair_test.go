package agent

import (
	"testing"

	"github.com/imgbake/imgbake/appliance/fstab"
	"github.com/imgbake/imgbake/appliance/proto"
)

func TestCheckFstabEntry(t *testing.T) {
	fss := []proto.Filesystem{
		{Device: "/dev/vda1", Type: "vfat", UUID: "5EA1-E5B0", PartUUID: "5ea1b0d0-0000-4000-8000-000000000012"},
		{Device: "/dev/vda2", Type: "ext4", UUID: "5ea1b0d0-0000-4000-8000-0000000000a3", Label: "root"},
		{Device: "/dev/vda3", Type: "swap", UUID: "11111111-2222-3333-4444-555555555555"},
	}
	data := `# comment
UUID=5ea1b0d0-0000-4000-8000-0000000000a3 / ext4 errors=remount-ro 0 1
UUID=5EA1-E5B0 /boot/efi vfat umask=0077 0 1
UUID=deadbeef-0000-0000-0000-000000000000 /data ext4 defaults 0 2
LABEL=root /mnt/again ext4 defaults 0 0
LABEL=gone /mnt/gone xfs defaults,nofail 0 0
UUID=11111111-2222-3333-4444-555555555555 none swap sw 0 0
UUID=99999999-2222-3333-4444-555555555555 none swap sw 0 0
proc /proc proc defaults 0 0
tmpfs /tmp tmpfs defaults 0 0
/dev/sda2 /srv ext4 defaults 0 0
/dev/sdb1 /srv2 ext4 defaults 0 0
/dev/nvme0n1p1 /nvme ext4 defaults 0 0
/dev/mapper/vg-root /lvm ext4 defaults 0 0
server:/export /nfs nfs defaults 0 0
//srv/share /cifs cifs defaults 0 0
/srv/data /bound none bind 0 0
PARTUUID=5ea1b0d0-0000-4000-8000-000000000012 /esp vfat defaults 0 0
ZFS=pool /zfs zfs defaults 0 0
/dev/disk/by-uuid/deadbeef-0000-0000-0000-000000000001 /byuuid ext4 defaults 0 0
`
	want := map[string]string{
		"/": proto.FstabOK, "/boot/efi": proto.FstabOK, "/data": proto.FstabMissing, "/mnt/again": proto.FstabOK,
		"/mnt/gone": proto.FstabMissing, "/proc": proto.FstabSkipped, "/tmp": proto.FstabSkipped,
		"/srv": proto.FstabOK, "/srv2": proto.FstabMissing, "/nvme": proto.FstabUnverified, "/lvm": proto.FstabUnverified,
		"/nfs": proto.FstabSkipped, "/cifs": proto.FstabSkipped, "/bound": proto.FstabSkipped, "/esp": proto.FstabOK,
		"/zfs": proto.FstabUnverified, "/byuuid": proto.FstabMissing,
	}
	var swaps []string
	for _, e := range fstab.Parse([]byte(data)) {
		got := checkFstabEntry(e, fss)
		if e.VFSType == "swap" {
			swaps = append(swaps, got.Status)
			continue
		}
		if got.Status != want[e.File] {
			t.Errorf("%s (%s): status %s (%s), want %s", e.File, e.Spec, got.Status, got.Note, want[e.File])
		}
		if got.Line != e.Line {
			t.Errorf("%s: line %d, want %d", e.File, got.Line, e.Line)
		}
	}
	if len(swaps) != 2 || swaps[0] != proto.FstabOK || swaps[1] != proto.FstabMissing {
		t.Errorf("swap entries: %v, want [ok missing]", swaps)
	}
}

func TestMappableDevice(t *testing.T) {
	for spec, want := range map[string]bool{
		"/dev/sda": true, "/dev/sda1": true, "/dev/xvdb2": true, "/dev/vdaa3": true, "/dev/hda": true,
		"/dev/nvme0n1p1": false, "/dev/md0": false, "/dev/mapper/x": false, "/dev/sd": false, "/dev/sda1x": false, "/dev/vg/lv": false,
	} {
		if got := mappableDevice(spec); got != want {
			t.Errorf("mappableDevice(%q) = %v, want %v", spec, got, want)
		}
	}
}
