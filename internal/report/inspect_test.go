package report

import (
	"bytes"
	"strings"
	"testing"

	"github.com/imgbake/imgbake/appliance/proto"
	"github.com/imgbake/imgbake/fsops"
)

func TestOSLine(t *testing.T) {
	for _, tc := range []struct {
		os   fsops.InspectedOS
		want string
	}{
		{fsops.InspectedOS{ID: "debian", VersionID: "12", Name: "Debian GNU/Linux 12"}, "debian 12 (Debian GNU/Linux 12)"},
		{fsops.InspectedOS{ID: "centos"}, "centos"},
		{fsops.InspectedOS{Name: "Some Linux"}, "Some Linux"},
		{fsops.InspectedOS{}, "unknown"},
		{fsops.InspectedOS{ID: "x\x1b[2J"}, `"x\x1b[2J"`},
	} {
		if got := osLine(tc.os); got != tc.want {
			t.Errorf("osLine(%+v) = %q, want %q", tc.os, got, tc.want)
		}
	}
}

// TestInspectPrintReleaseAndBinds: the text report names the family, the
// file the OS was identified by, the package format and database, and the
// bind mounts.
func TestInspectPrintReleaseAndBinds(t *testing.T) {
	rep := &fsops.Inspection{
		OS: fsops.InspectedOS{ID: "centos", VersionID: "6.10", Name: "CentOS release 6.10 (Final)", Family: "rhel",
			Root: "/dev/mapper/vg_centos6-lv_root", ReleaseFile: "/etc/centos-release"},
		PackageManager: "yum", PackageFormat: "rpm", PackageDB: "/var/lib/rpm/Packages",
		Mountpoints: map[string]string{"/": "/dev/mapper/vg_centos6-lv_root", "/boot": "/dev/vda1"},
		BindMounts:  map[string]string{"/srv/shared": "/home/shared"},
	}
	var out bytes.Buffer
	Inspection(&out, rep)
	for _, want := range []string{
		"os:              centos 6.10 (CentOS release 6.10 (Final))\n",
		"family:          rhel\n",
		"identified by:   /etc/centos-release\n",
		"package manager: yum (rpm, database /var/lib/rpm/Packages)\n",
		"bind mounts:\n  /srv/shared  from /home/shared\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	rep.OS.Family, rep.PackageFormat, rep.PackageDB, rep.BindMounts = "centos", "", "", nil
	out.Reset()
	Inspection(&out, rep)
	if s := out.String(); strings.Contains(s, "family:") || !strings.Contains(s, "package manager: yum\n") || strings.Contains(s, "bind mounts") {
		t.Errorf("family equal to the id, or no format, database or binds, still printed:\n%s", s)
	}
}

func TestInspectPrintLVMAndOSes(t *testing.T) {
	rep := &fsops.Inspection{
		OS:          fsops.InspectedOS{ID: "debian", VersionID: "12", Name: "Debian 12", Root: "/dev/mapper/vg0-root"},
		Mountpoints: map[string]string{"/": "/dev/mapper/vg0-root"},
		VolumeGroups: []proto.VolumeGroup{{Name: "vg0", Size: 1 << 30, Free: 64 << 20, PVs: []string{"/dev/vda2"},
			MissingPVs: []string{"abc-def"},
			LVs: []proto.LogicalVolume{
				{Name: "root", VG: "vg0", Size: 900 << 20, Type: "linear", Active: true, Device: "/dev/mapper/vg0-root"},
				{Name: "pool", VG: "vg0", Size: 64 << 20, Type: "thin", Note: "segment type thin is not supported\x1b[2J"},
			}}},
		OperatingSystems: []proto.OSRoot{
			{Device: "/dev/mapper/vg0-root", ID: "debian", PrettyName: "Debian 12", Hostname: "h1", Mountpoint: "/"},
			{Device: "/dev/vdb1", ID: "alpine", VersionID: "3.19", Hostname: "h\x1b2"},
			{Device: "/dev/vdb2", ID: "other", PrettyName: "Other", Mountpoint: "/mnt/other"},
		},
	}
	var out bytes.Buffer
	Inspection(&out, rep)
	got := out.String()
	for _, want := range []string{
		"operating systems: 3 (multi-boot)\n",
		"  /dev/mapper/vg0-root   Debian 12, hostname \"h1\" (root)\n",
		"  /dev/vdb1              alpine 3.19, hostname \"h\\x1b2\" (not mounted)\n",
		"  /dev/vdb2              Other, hostname \"\" (mounted at /mnt/other)\n",
		"lvm volume groups:\n  vg0  " + fsops.HumanBytes(1<<30) + ", " + fsops.HumanBytes(64<<20) + " free, PVs /dev/vda2\n",
		"    missing PVs: abc-def\n",
		"    root         " + fsops.HumanBytes(900<<20),
		"linear  /dev/mapper/vg0-root\n",
		"thin    not active: \"segment type thin is not supported\\x1b[2J\"\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "\x1b") {
		t.Errorf("escape sequence from the image printed raw:\n%q", got)
	}
	// One OS: no multi-boot section.
	rep.OperatingSystems = rep.OperatingSystems[:1]
	out.Reset()
	Inspection(&out, rep)
	if strings.Contains(out.String(), "operating systems:") {
		t.Errorf("single OS listed as multi-boot:\n%s", out.String())
	}
}
