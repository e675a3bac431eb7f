package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/imgbake/imgbake/appliance/proto"
)

func TestKeySelects(t *testing.T) {
	const uuid = "66666666-7777-8888-9999-aaaaaaaaaaaa"
	part := proto.Filesystem{Device: "/dev/vda3", Type: proto.TypeLUKS, UUID: uuid}
	lv := proto.Filesystem{Device: "/dev/mapper/vg0-home", Type: proto.TypeLUKS, UUID: uuid, VG: "vg0", LV: "home"}
	for _, tc := range []struct {
		sel  string
		fs   proto.Filesystem
		want bool
	}{
		{"all", part, true},
		{uuid, part, true},
		{"UUID=66666666-7777-8888-9999-AAAAAAAAAAAA", part, true},
		{"/dev/sda3", part, true}, // the original machine's name
		{"/dev/vda3", part, true},
		{"/dev/disk/by-uuid/" + uuid, part, true},
		{"/dev/vda2", part, false},
		{"11111111-2222-3333-4444-555555555555", part, false},
		{"/dev/vg0/home", lv, true},
		{"/dev/mapper/vg0-home", lv, true},
		{"/dev/vg0/root", lv, false},
	} {
		if got := keySelects(tc.sel, tc.fs, uuid); got != tc.want {
			t.Errorf("keySelects(%q, %s) = %v", tc.sel, tc.fs.Device, got)
		}
	}
}

func TestProbeLUKSHeader(t *testing.T) {
	fs, err := probeDevice("../luks/testdata/luks2-headers.bin")
	if err != nil {
		t.Fatal(err)
	}
	if fs.Type != proto.TypeLUKS || fs.UUID != "66666666-7777-8888-9999-aaaaaaaaaaaa" {
		t.Errorf("probe: %+v", fs)
	}
}

// An unopened volume says how to open it; a volume given a key outside
// the appliance is not mapped.
func TestOpenLUKSWithoutKey(t *testing.T) {
	a := newAgent()
	fss := []proto.Filesystem{{Device: "../luks/testdata/luks1-header.bin", Type: proto.TypeLUKS}}
	vols := a.openLUKS(fss, nil)
	if len(vols) != 1 || vols[0].Version != 1 || vols[0].UUID != "11111111-2222-3333-4444-555555555555" || vols[0].Mapping != "" {
		t.Fatalf("volumes %+v", vols)
	}
	for _, want := range []string{"--key ../luks/testdata/luks1-header.bin:key:", "--key 11111111-2222-3333-4444-555555555555:file:"} {
		if !contains(vols[0].Problem, want) {
			t.Errorf("problem %q lacks %q", vols[0].Problem, want)
		}
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func TestCrypttabAliases(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	tab := "# <target name> <source device> <key file> <options>\nsda3_crypt UUID=66666666-7777-8888-9999-aaaaaaaaaaaa none luks,discard\nother /dev/vdb1 none luks\n"
	if err := os.WriteFile(filepath.Join(dir, "etc/crypttab"), []byte(tab), 0o644); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	mapped := proto.MapperPath(proto.LUKSMapperName("66666666-7777-8888-9999-aaaaaaaaaaaa"))
	fss := []proto.Filesystem{{Device: "/dev/vda3", Type: proto.TypeLUKS, UUID: "66666666-7777-8888-9999-aaaaaaaaaaaa"},
		{Device: mapped, Type: "ext4", LUKS: "/dev/vda3"}}
	vols := []proto.LUKSVolume{{Device: "/dev/vda3", UUID: "66666666-7777-8888-9999-aaaaaaaaaaaa", Mapping: mapped}}
	a := newAgent()
	a.cryptAliases = readCrypttab(fd, fss, vols)
	if got := a.cryptSpec("/dev/mapper/sda3_crypt"); got != mapped {
		t.Errorf("/dev/mapper/sda3_crypt -> %q, want %q", got, mapped)
	}
	if got, ok := resolveSpec(a.cryptSpec("/dev/mapper/sda3_crypt"), fss); !ok || got.Device != mapped {
		t.Errorf("resolve: %+v %v", got, ok)
	}
	if got := a.cryptSpec("/dev/mapper/other"); got != "/dev/mapper/other" {
		t.Errorf("unopened crypttab entry rewritten to %q", got)
	}
}

// No OS found with a volume left locked: the message leads with it and
// how to open it.
func TestNoOSErrorNamesLockedVolume(t *testing.T) {
	vols := []proto.LUKSVolume{{Device: "/dev/vda2", UUID: "u-1", Version: 2, NeedsKey: true,
		Problem: "encrypted, no key given: " + keyFlagHint("/dev/vda2", "u-1")}}
	e := &NoOSError{Tried: []string{"/dev/vda1: ext4 " + withoutRelease, luksTried(vols[0])}, Locked: lockedLUKS(vols)}
	msg := e.Error()
	want := "no operating system found (the root may be on an encrypted volume: /dev/vda2: LUKS2 volume u-1: encrypted, no key given: open it with --key /dev/vda2:key:PASSPHRASE or --key u-1:file:FILE (or --key all:...))"
	if !strings.HasPrefix(msg, want) || !strings.Contains(msg, "/dev/vda2: LUKS2 volume u-1: locked") {
		t.Errorf("message:\n%s\nwant it to start with\n%s", msg, want)
	}
}
