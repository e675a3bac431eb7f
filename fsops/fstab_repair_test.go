package fsops

import (
	"strings"
	"testing"

	"github.com/imgbake/imgbake/appliance/proto"
)

func TestFixFstabText(t *testing.T) {
	fstab := "# /etc/fstab\n" +
		"UUID=dead-root /               ext4    errors=remount-ro 0       1\n" +
		"UUID=dead-data /data ext4 defaults 0 2\r\n" +
		"LABEL=gone\t/mnt/gone\txfs\tdefaults,nofail\t0 0\n" +
		"UUID=dead-swap none swap sw 0 0\n" +
		"/dev/sdz1 /mnt/my\\040disk vfat\n"
	problems := []proto.FstabEntry{
		{Line: 2, Spec: "UUID=dead-root", Mountpoint: "/", Status: proto.FstabMissing},
		{Line: 3, Spec: "UUID=dead-data", Mountpoint: "/data", Status: proto.FstabMissing},
		{Line: 4, Spec: "LABEL=gone", Mountpoint: "/mnt/gone", Status: proto.FstabMissing},
		{Line: 5, Spec: "UUID=dead-swap", Mountpoint: "none", Status: proto.FstabMissing},
		{Line: 6, Spec: "/dev/sdz1", Mountpoint: "/mnt/my disk", Status: proto.FstabMissing},
	}
	root := proto.Filesystem{Device: "/dev/vda3", UUID: "5ea1-root"}

	out, fixes, err := fixFstabText([]byte(fstab), problems, root, false)
	if err != nil {
		t.Fatal(err)
	}
	want := "# /etc/fstab\n" +
		"UUID=5ea1-root /               ext4    errors=remount-ro 0       1\n" +
		"# imgbake: device not found: UUID=dead-data /data ext4 defaults 0 2\r\n" +
		"# imgbake: device not found: LABEL=gone\t/mnt/gone\txfs\tdefaults,nofail\t0 0\n" +
		"# imgbake: device not found: UUID=dead-swap none swap sw 0 0\n" +
		"# imgbake: device not found: /dev/sdz1 /mnt/my\\040disk vfat\n"
	if string(out) != want {
		t.Errorf("comment out:\n%s\nwant:\n%s", out, want)
	}
	if len(fixes) != 5 || !strings.Contains(fixes[0].What, "UUID=5ea1-root") {
		t.Errorf("fixes %+v", fixes)
	}

	out, fixes, err = fixFstabText([]byte(fstab), problems, root, true)
	if err != nil {
		t.Fatal(err)
	}
	want = "# /etc/fstab\n" +
		"UUID=5ea1-root /               ext4    errors=remount-ro 0       1\n" +
		"UUID=dead-data /data ext4 defaults,nofail 0 2\r\n" +
		"LABEL=gone\t/mnt/gone\txfs\tdefaults,nofail\t0 0\n" +
		"UUID=dead-swap none swap sw,nofail 0 0\n" +
		"/dev/sdz1 /mnt/my\\040disk vfat defaults,nofail\n"
	if string(out) != want {
		t.Errorf("nofail:\n%s\nwant:\n%s", out, want)
	}
	if fixes[2].New != "" || !strings.Contains(fixes[2].What, "already nofail") {
		t.Errorf("an entry with nofail was changed: %+v", fixes[2])
	}

	// Nothing to change: the same bytes back.
	out, _, err = fixFstabText([]byte(fstab), problems[2:3], root, true)
	if err != nil || string(out) != fstab {
		t.Errorf("unchanged case: %v\n%s", err, out)
	}
	// A root without a UUID is left alone rather than commented out.
	_, fixes, _ = fixFstabText([]byte(fstab), problems[:1], proto.Filesystem{Device: "/dev/vda"}, false)
	if fixes[0].New != "" {
		t.Errorf("/ was changed without a UUID to name: %+v", fixes[0])
	}
	// The file changed under us: refuse.
	if _, _, err := fixFstabText([]byte("x y z\n"+fstab), problems, root, false); err == nil {
		t.Error("a moved line was edited")
	}
	if _, _, err := fixFstabText([]byte(fstab), []proto.FstabEntry{{Line: 99, Spec: "x", Mountpoint: "/x"}}, root, false); err == nil {
		t.Error("a line past the end was accepted")
	}
}
