package agent

import (
	"strings"
	"testing"

	"github.com/imgbake/imgbake/appliance/fstab"
	"github.com/imgbake/imgbake/appliance/proto"
)

// mountpoints lists the entries' mountpoints, bind mounts marked "bind:".
func mountpoints(entries []fstab.Entry) string {
	var out []string
	for _, e := range entries {
		if isBind(e) {
			out = append(out, "bind:"+e.File)
		} else {
			out = append(out, e.File)
		}
	}
	return strings.Join(out, " ")
}

func TestOrderFstab(t *testing.T) {
	for _, tc := range []struct {
		name, fstab, want string
	}{
		{"split layout: /boot/efi listed before /boot, a bind before its source",
			`UUID=r / ext4 defaults 0 1
UUID=e /boot/efi vfat umask=0077 0 2
LABEL=boot /boot ext4 defaults 0 2
UUID=u /usr ext4 defaults 0 2
LABEL=var /var ext4 defaults 0 2
/home/shared /srv/shared none bind 0 0
UUID=h /home ext4 defaults 0 2
UUID=s none swap sw 0 0
LABEL=scratch /mnt/scratch ext4 noauto 0 0
UUID=gone /mnt/backup ext4 nofail 0 0
proc /proc proc defaults 0 0
tmpfs /dev/shm tmpfs defaults 0 0
server:/export /nfs nfs defaults 0 0
`, "/boot /boot/efi /usr /var /home bind:/srv/shared /mnt/backup"},
		{"deep before shallow, whatever the depth", "a /var/lib/docker ext4 d\nb /var ext4 d\nc /var/lib ext4 d\n", "/var /var/lib /var/lib/docker"},
		{"otherwise the file's order", "a /b ext4 d\nb /a ext4 d\nc /c/d ext4 d\n", "/b /a /c/d"},
		{"one mountpoint twice: the file's order", "a /data ext4 d\nb /data xfs d\n", "/data /data"},
		{"a bind mount's source on a filesystem mounted later", "/srv/www /var/www none bind 0 0\nx /srv ext4 d\ny /var ext4 d\n",
			"/srv /var bind:/var/www"},
		{"rbind and vfstype bind", "/a /b none rbind 0 0\n/c /d bind defaults 0 0\n", "bind:/b bind:/d"},
		{"binds into each other's source keep the file's order", "/x/s /y none bind\n/y/s /x none bind\n", "bind:/y bind:/x"},
		{"paths are cleaned; relative mountpoints and / are not mounted", "a /srv//data/ ext4 d\nb relative ext4 d\nc / ext4 d\n", "/srv/data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := mountpoints(orderFstab(fstab.Parse([]byte(tc.fstab)))); got != tc.want {
				t.Errorf("order %q, want %q", got, tc.want)
			}
		})
	}
}

func TestLostUnder(t *testing.T) {
	entries := fstab.Parse([]byte("LABEL=boot /boot ext4 d\nLABEL=home /home ext4 d\n"))
	failed := []fstabFailure{{entry: entries[0], reason: "gone"}, {entry: entries[1], reason: "gone"}}
	for line, want := range map[string]string{
		"UUID=e /boot/efi vfat d":         "/boot",
		"/home/shared /srv none bind":     "/home",
		"/home /srv/home none bind":       "/home",
		"/srv/x /boot/grub none bind":     "/boot",
		"UUID=v /var ext4 d":              "",
		"/homes /srv/homes none bind":     "",
		"UUID=b /bootstrap ext4 defaults": "",
	} {
		e, _ := fstab.ParseLine(line)
		f, lost := lostUnder(e, failed)
		if got := map[bool]string{true: f.entry.File, false: ""}[lost]; got != want {
			t.Errorf("%q: lost under %q, want %q", line, got, want)
		}
	}
}

func TestNoOSErrorNamesReleaseFilesOnce(t *testing.T) {
	err := &NoOSError{Tried: []string{"/dev/vda1: ext4 " + withoutRelease, "/dev/vda2: swap (not a root filesystem)", "/dev/vda3: xfs " + withoutRelease}}
	msg := err.Error()
	if strings.Count(msg, "/etc/redhat-release") != 1 || strings.Count(msg, "/etc/SuSE-release") != 1 ||
		!strings.Contains(msg, "tried: /dev/vda1: ext4 without /etc/os-release or a release file; /dev/vda2: swap") || !strings.HasSuffix(msg, mountByHandHint) {
		t.Errorf("message: %s", msg)
	}
	if msg := (&NoOSError{Tried: []string{"/dev/vda: no filesystem recognized"}}).Error(); strings.Contains(msg, "release files") {
		t.Errorf("release files named where none was looked for: %s", msg)
	}
}

func TestFstabErrorNamesEverything(t *testing.T) {
	e, _ := fstab.ParseLine("LABEL=var /var ext4 defaults 0 2")
	e.Line = 6
	err := &FstabError{
		Root:   proto.Filesystem{Device: "/dev/vda3", Type: "ext4"},
		Failed: []fstabFailure{{entry: e, reason: proto.FstabMissingWarning(6, "LABEL=var", "/var")}},
		Tried:  []string{"/dev/vda1: ext4 without /etc/os-release or a release file (...)"},
		Filesystems: []proto.Filesystem{{Device: "/dev/vda1", Type: "ext4", Label: "boot"}, {Device: "/dev/vda2"},
			{Device: "/dev/vda3", Type: "ext4", UUID: "5ea1"}},
	}
	msg := err.Error()
	for _, want := range []string{"/dev/vda3 (ext4)", "/etc/fstab line 6: LABEL=var for /var: no such device in the image",
		"/dev/vda1: ext4 without /etc/os-release", "/dev/vda1 ext4 LABEL=boot", "/dev/vda2 (no filesystem)", "/dev/vda3 ext4 UUID=5ea1",
		"-m DEVICE[:MOUNTPOINT]", "nofail"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
}
