package main

import (
	"encoding/json"
	"testing"

	"github.com/imgbake/imgbake/appliance/proto"
	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/testimages"
)

// Scenario 5 of the broken-disk suite: root on LVM. inspect, cat and run
// must find and mount it; what run wrote is read back from the raw image
// with debugfs at the offset the host's LVM allocated the volume (no
// imgbake code involved).
func TestLVMRootVM(t *testing.T) {
	vmTests(t)
	tmp := privateTmp(t)
	info := testimages.InfoOf(t, testimages.LVM)
	disk := testimages.Fresh(t, testimages.LVM)
	if info.RootOffset == 0 || info.DataOffset == 0 {
		t.Fatalf("sidecar without LV offsets: %+v", info)
	}

	r := imgbake(t, "inspect", "--json", "-a", disk)
	wantCode(t, r, 0, "inspect --json")
	var rep fsops.Inspection
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("inspect --json: %v\n%s", err, r)
	}
	if rep.OS.ID != "debian" || rep.OS.Root != "/dev/mapper/vg0-root" || rep.Hostname != info.Hostname {
		t.Errorf("os %+v, hostname %q", rep.OS, rep.Hostname)
	}
	for mp, dev := range map[string]string{"/": "/dev/mapper/vg0-root", "/boot": "/dev/vda1", "/srv": "/dev/mapper/vg0-data"} {
		if rep.Mountpoints[mp] != dev {
			t.Errorf("mountpoint %s on %q, want %s (all: %v)", mp, rep.Mountpoints[mp], dev, rep.Mountpoints)
		}
	}
	if len(rep.FstabProblems) > 0 || len(rep.Warnings) > 0 {
		t.Errorf("fstab problems %v, warnings %v", rep.FstabProblems, rep.Warnings)
	}
	if len(rep.VolumeGroups) != 1 {
		t.Fatalf("volume groups: %+v", rep.VolumeGroups)
	}
	vg := rep.VolumeGroups[0]
	if vg.Name != info.VG || len(vg.PVs) != 1 || vg.PVs[0] != "/dev/vda2" || vg.ExtentSize != 4<<20 || vg.Free <= 0 {
		t.Errorf("vg %+v", vg)
	}
	wantLVs := []struct {
		name string
		size int64
	}{{"root", info.RootSize}, {"swap", info.SwapSize}, {"data", info.DataSize}, {"alt", info.AltSize}}
	if len(vg.LVs) != len(wantLVs) {
		t.Fatalf("LVs %+v", vg.LVs)
	}
	for i, w := range wantLVs {
		lv := vg.LVs[i]
		if lv.Name != w.name || lv.VG != "vg0" || lv.Size != w.size || lv.Type != "linear" || !lv.Active ||
			lv.Device != "/dev/mapper/vg0-"+w.name || lv.ReadOnly != true {
			// inspect attaches the disk read-only, so the volumes are mapped read-only.
			t.Errorf("LV %d: %+v, want %s of %d bytes, active, read-only", i, lv, w.name, w.size)
		}
	}
	fsByDev := map[string]proto.Filesystem{}
	for _, fs := range rep.Filesystems {
		fsByDev[fs.Device] = fs
	}
	if fs := fsByDev["/dev/mapper/vg0-root"]; fs.Type != "ext4" || fs.UUID != info.RootUUID || fs.VG != "vg0" || fs.LV != "root" {
		t.Errorf("root filesystem %+v", fs)
	}
	if fs := fsByDev["/dev/mapper/vg0-swap"]; fs.Type != "swap" {
		t.Errorf("swap %+v", fs)
	}
	if fs := fsByDev["/dev/vda2"]; fs.Type != "LVM2_member" {
		t.Errorf("PV %+v", fs)
	}
	// Multi-boot: the Debian root and the second OS on LV alt.
	if len(rep.OperatingSystems) != 2 {
		t.Fatalf("operating systems: %+v", rep.OperatingSystems)
	}
	if o := rep.OperatingSystems[0]; o.Device != "/dev/mapper/vg0-root" || o.ID != "debian" || o.VersionID != "12" ||
		o.Hostname != "testhost" || o.Mountpoint != "/" {
		t.Errorf("first OS %+v", o)
	}
	if o := rep.OperatingSystems[1]; o.Device != "/dev/mapper/vg0-alt" || o.ID != "imgbake-alt" || o.VersionID != "1.0" ||
		o.PrettyName != "Imgbake Alt OS 1.0" || o.Hostname != "althost" || o.Mountpoint != "" || o.Type != "ext4" {
		t.Errorf("second OS %+v", o)
	}

	r = imgbake(t, "inspect", "-a", disk)
	wantCode(t, r, 0, "inspect")
	wantMatch(t, r.stdout, `(?m)^root:\s+/dev/mapper/vg0-root$`, "inspect")
	wantMatch(t, r.stdout, `(?m)^operating systems: 2 \(multi-boot\)\n\s+/dev/mapper/vg0-root\s+Debian GNU/Linux 12 \(bookworm\), hostname "testhost" \(root\)\n\s+/dev/mapper/vg0-alt\s+Imgbake Alt OS 1.0, hostname "althost" \(not mounted\)$`, "inspect")
	wantMatch(t, r.stdout, `(?m)^lvm volume groups:\n  vg0  .* free, PVs /dev/vda2\n\s+root\s+900\.0 MiB\s+linear\s+/dev/mapper/vg0-root, read-only$`, "inspect")

	r = imgbake(t, "cat", "-a", disk, "/etc/hostname", "/srv/marker", "/boot/README")
	wantCode(t, r, 0, "cat")
	if want := "testhost\nimgbake test image debian-lvm.raw: LV vg0/data\nimgbake test image debian-lvm.raw: /boot\n"; r.stdout != want {
		t.Errorf("cat: %q, want %q", r.stdout, want)
	}

	recipe := writeRecipe(t, `name: lvm
steps:
  - write: {path: /etc/written-on-lvm, content: "written by imgbake run\n"}
  - run: echo ran in the chroot > /srv/from-run
`)
	r = imgbake(t, "run", "-a", disk, recipe)
	wantCode(t, r, 0, "run")
	if b, err := testimages.ReadFileAt(t, disk, info.RootOffset, "/etc/written-on-lvm"); err != nil || string(b) != "written by imgbake run\n" {
		t.Errorf("/etc/written-on-lvm in LV root: %q, %v", b, err)
	}
	if b, err := testimages.ReadFileAt(t, disk, info.DataOffset, "/from-run"); err != nil || string(b) != "ran in the chroot\n" {
		t.Errorf("/from-run in LV data: %q, %v", b, err)
	}

	// fsck names an LV the way inspect shows it, or as VG/LV.
	r = imgbake(t, "fsck", "-a", disk, "vg0/root", "/dev/mapper/vg0-data")
	wantCode(t, r, 0, "fsck of LVs")
	wantMatch(t, r.stdout, `(?m)^-> /dev/mapper/vg0-root: clean`, "fsck")
	wantMatch(t, r.stdout, `(?m)^-> /dev/mapper/vg0-data: clean`, "fsck")
	noLeftovers(t, tmp)
}
