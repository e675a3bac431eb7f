package agent

import (
	"bytes"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/imgbake/imgbake/appliance/proto"
)

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
	vols := a.openLUKS(fss, []proto.LUKSVolumeKey{{Device: "/dev/vdz9", UUID: "11111111-2222-3333-4444-555555555555", Key: []byte("other")}})
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
		Problem: "encrypted, no key given: " + proto.LUKSKeyHint("/dev/vda2", "u-1")}}
	e := &NoOSError{Tried: []string{"/dev/vda1: ext4 " + withoutRelease, luksTried(vols[0])}, Locked: lockedLUKS(vols)}
	msg := e.Error()
	want := "no operating system found (the root may be on an encrypted volume: /dev/vda2: LUKS2 volume u-1: encrypted, no key given: open it with --key /dev/vda2:key:PASSPHRASE or --key u-1:file:FILE (or --key all:...))"
	if !strings.HasPrefix(msg, want) || !strings.Contains(msg, "/dev/vda2: LUKS2 volume u-1: locked") {
		t.Errorf("message:\n%s\nwant it to start with\n%s", msg, want)
	}
}

// A volume key is checked against the header's digest before anything
// is mapped: a wrong one is refused, the right one (as cryptsetup reports
// it) passes; the host's Problem for a volume it could not open is kept.
func TestOpenLUKSChecksVolumeKey(t *testing.T) {
	if _, err := exec.LookPath("cryptsetup"); err != nil {
		t.Skip("cryptsetup not installed (apt-get install cryptsetup-bin)")
	}
	dir := t.TempDir()
	img, pw := filepath.Join(dir, "vol"), filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("pw"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(img, make([]byte, 2<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cryptsetup", "luksFormat", "-q", "--type", "luks1", "--pbkdf-force-iterations", "1000", "--key-file", pw, img).CombinedOutput(); err != nil {
		t.Fatalf("luksFormat: %v\n%s", err, out)
	}
	out, err := exec.Command("cryptsetup", "luksDump", "-q", "--dump-volume-key", "--key-file", pw, img).CombinedOutput()
	if err != nil {
		t.Fatalf("luksDump: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`(?s)MK dump:\s*((?:[0-9a-f]{2}\s+)+)`).FindSubmatch(out)
	uuidOut, err := exec.Command("cryptsetup", "luksUUID", img).Output()
	if m == nil || err != nil {
		t.Fatalf("no volume key or UUID: %v\n%s", err, out)
	}
	key, err := hex.DecodeString(strings.Join(strings.Fields(string(m[1])), ""))
	if err != nil {
		t.Fatal(err)
	}
	uuid := strings.TrimSpace(string(uuidOut))
	fs := proto.Filesystem{Device: img, Type: proto.TypeLUKS}
	a := newAgent()
	wrong := bytes.Clone(key)
	wrong[3] ^= 0x40
	for _, tc := range []struct {
		key  proto.LUKSVolumeKey
		want string
	}{
		{proto.LUKSVolumeKey{Device: img, UUID: uuid, Key: wrong}, "the volume key sent for it is refused"},
		{proto.LUKSVolumeKey{Device: img, UUID: uuid, Key: key}, "not opened outside the appliance"},
		{proto.LUKSVolumeKey{Device: img, UUID: strings.ToUpper(uuid), Key: key}, "not opened outside the appliance"},
		{proto.LUKSVolumeKey{Device: img + "x", UUID: uuid, Key: key}, "no key given"},
		{proto.LUKSVolumeKey{Device: img, UUID: uuid, Problem: "the key given for it (--key all:...) is wrong"}, "is wrong"},
	} {
		v := a.openLUKSVolume(fs, []proto.LUKSVolumeKey{tc.key})
		if v.UUID != uuid || v.Mapping != "" || !strings.Contains(v.Problem, tc.want) {
			t.Errorf("%s: volume %+v, want a problem with %q", tc.key, v, tc.want)
		}
	}
}
