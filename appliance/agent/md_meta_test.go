package agent

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgbake/imgbake/appliance/proto"
)

var testMDUUID = [16]byte{0x5e, 0xa1, 0xb0, 0xd0, 0, 0, 0x40, 0, 0x80, 0, 0, 0, 0, 0, 0x07, 0xa1}

// mdTestSuper1 is a member device of size bytes with a v1.minor superblock
// (RAID1, slot role of 2 members) where that version keeps it.
func mdTestSuper1(size int64, minor, role int, name string) []byte {
	dev := make([]byte, size)
	var off int64
	switch minor {
	case 0:
		off = ((size/512 - 16) &^ 7) * 512
	case 1:
		off = 0
	case 2:
		off = 4096
	}
	sb := dev[off : off+4096]
	le := binary.LittleEndian
	le.PutUint32(sb[0:], mdMagic)
	le.PutUint32(sb[4:], 1)
	copy(sb[16:32], testMDUUID[:])
	copy(sb[32:64], name)
	le.PutUint64(sb[64:], 1700000000)
	le.PutUint32(sb[72:], 1)
	dataOff := uint64(2048)
	if minor == 0 {
		dataOff = 0
	}
	le.PutUint64(sb[80:], 4096)
	le.PutUint32(sb[92:], 2)
	le.PutUint64(sb[128:], dataOff)
	le.PutUint64(sb[136:], 4096)
	le.PutUint64(sb[144:], uint64(off/512))
	le.PutUint32(sb[160:], uint32(role))
	le.PutUint64(sb[192:], 1700000000)
	le.PutUint64(sb[200:], 7)
	le.PutUint64(sb[208:], ^uint64(0))
	le.PutUint32(sb[220:], 128)
	for i := 0; i < 128; i++ {
		r := uint16(0xffff)
		if i < 2 {
			r = uint16(i)
		}
		le.PutUint16(sb[256+2*i:], r)
	}
	le.PutUint32(sb[216:], mdCsum1(sb[:512]))
	return dev
}

// mdTestSuper0 is a member of size bytes with a 0.90 superblock (RAID1,
// md_minor 3, active in slot role).
func mdTestSuper0(size int64, role int) []byte {
	dev := make([]byte, size)
	off := ((size/512)&^127 - 128) * 512
	sb := dev[off : off+4096]
	le := binary.LittleEndian
	le.PutUint32(sb[0:], mdMagic)
	le.PutUint32(sb[4:], 0)
	le.PutUint32(sb[8:], 90)
	copy(sb[20:24], testMDUUID[0:4])
	le.PutUint32(sb[24:], 1700000000)
	le.PutUint32(sb[28:], 1)
	le.PutUint32(sb[32:], uint32(off/1024)) // size in KiB
	le.PutUint32(sb[36:], 2)
	le.PutUint32(sb[40:], 2)
	le.PutUint32(sb[44:], 3)
	copy(sb[52:64], testMDUUID[4:])
	st := sb[128:]
	le.PutUint32(st[0:], 1700000000)
	le.PutUint32(st[4:], 1) // clean
	le.PutUint32(st[8:], 2)
	le.PutUint32(st[12:], 2)
	le.PutUint32(st[28:], 9) // events_lo
	for i := 0; i < 2; i++ {
		d := sb[512+i*128:]
		le.PutUint32(d[0:], uint32(i))
		le.PutUint32(d[12:], uint32(i))
		le.PutUint32(d[16:], 6) // active, sync
	}
	this := sb[992*4:]
	le.PutUint32(this[0:], uint32(role))
	le.PutUint32(this[12:], uint32(role))
	le.PutUint32(this[16:], 6)
	le.PutUint32(st[24:], mdCsum0(sb))
	return dev
}

func TestReadMDSuper(t *testing.T) {
	const size = 8 << 20
	for _, tc := range []struct {
		name    string
		dev     []byte
		version string
		role    int
		events  uint64
		minor   int
		uuid    string
	}{
		{"1.2", mdTestSuper1(size, 2, 1, "debian:0"), "1.2", 1, 7, -1, "5ea1b0d0-0000-4000-8000-0000000007a1"},
		{"1.1", mdTestSuper1(size, 1, 0, "debian:0"), "1.1", 0, 7, -1, "5ea1b0d0-0000-4000-8000-0000000007a1"},
		{"1.0", mdTestSuper1(size, 0, 1, "debian:0"), "1.0", 1, 7, -1, "5ea1b0d0-0000-4000-8000-0000000007a1"},
		{"0.90", mdTestSuper0(size, 1), "0.90", 1, 9, 3, "d0b0a15e-0040-0000-0000-0080a1070000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sb, err := readMDSuper(bytes.NewReader(tc.dev), size, true)
			if err != nil {
				t.Fatal(err)
			}
			if sb.Version() != tc.version || sb.role != tc.role || sb.events != tc.events || sb.level != 1 ||
				sb.raidDisks != 2 || sb.preferMinor != tc.minor || sb.UUID() != tc.uuid {
				t.Errorf("got %+v (version %s, uuid %s)", sb, sb.Version(), sb.UUID())
			}
			if tc.version != "0.90" && sb.name != "debian:0" {
				t.Errorf("name %q", sb.name)
			}
			// A whole disk is not searched at its end.
			if _, err := readMDSuper(bytes.NewReader(tc.dev), size, false); (err == nil) != (tc.version == "1.2" || tc.version == "1.1") {
				t.Errorf("without atEnd: err = %v", err)
			}
			// One flipped bit breaks the checksum: a clear error, no member.
			bad := bytes.Clone(tc.dev)
			bad[sb.offset+40] ^= 1
			if _, err := readMDSuper(bytes.NewReader(bad), size, true); err == nil || !strings.Contains(err.Error(), "checksum") {
				t.Errorf("corrupted superblock: err = %v, want a checksum error", err)
			}
			crossCheckMdadm(t, tc.dev, sb)
		})
	}
	if _, err := readMDSuper(bytes.NewReader(make([]byte, size)), size, true); err != errNoMDSuper {
		t.Errorf("empty device: %v", err)
	}
}

// crossCheckMdadm reads the same member with the host's mdadm, which
// shares no code with the parser (mdadm --examine reads a plain file).
func crossCheckMdadm(t *testing.T, dev []byte, sb *mdSuper) {
	mdadm, err := exec.LookPath("mdadm")
	if err != nil {
		t.Log("no mdadm on this host: not cross-checked")
		return
	}
	p := filepath.Join(t.TempDir(), "member")
	if err := os.WriteFile(p, dev, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(mdadm, "--examine", "--metadata="+sb.Version(), p).CombinedOutput()
	if err != nil {
		t.Fatalf("mdadm --examine: %v\n%s", err, out)
	}
	text := string(out)
	u := strings.ReplaceAll(sb.UUID(), "-", "")
	wantUUID := u[0:8] + ":" + u[8:16] + ":" + u[16:24] + ":" + u[24:32]
	for _, want := range []string{"Version : " + sb.Version(), "UUID : " + wantUUID, "Raid Level : raid1", "Raid Devices : 2", "- correct"} {
		if !strings.Contains(text, want) {
			t.Errorf("mdadm --examine lacks %q:\n%s", want, text)
		}
	}
}

// FuzzMDSuper reads hostile md superblocks at every place a version keeps
// one: it must not panic, and what it accepts is self-consistent.
func FuzzMDSuper(f *testing.F) {
	const size = 256 << 10
	for _, dev := range [][]byte{mdTestSuper1(size, 2, 1, "debian:0"), mdTestSuper1(size, 0, 0, "x"), mdTestSuper0(size, 1)} {
		// The seeds are the 4 KiB around each superblock.
		for _, off := range []int64{0, 4096, size - 8192, size - 65536} {
			if sb, err := readMDSuper(bytes.NewReader(dev), size, true); err == nil && sb.offset == off {
				f.Add(dev[off:off+4096], sb.major*100+sb.minor)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, where int) {
		if len(data) > 4096 {
			data = data[:4096]
		}
		dev := make([]byte, size)
		offs := mdSuperOffsets(size)
		at := offs[(where%len(offs)+len(offs))%len(offs)]
		copy(dev[at.off:], data)
		sb, err := readMDSuper(bytes.NewReader(dev), size, true)
		if err != nil {
			return
		}
		if sb.raidDisks < 0 || sb.raidDisks > mdMaxDev1 || len(sb.name) > 32 || sb.role < -2 || sb.Version() == "" {
			t.Fatalf("accepted an inconsistent superblock: %+v", sb)
		}
	})
}

// TestResolveSpecMD: fstab names an array as mdadm does (/dev/md/NAME with
// or without the array's "host:"), by node or by its filesystem's UUID; a
// member is never what a spec names.
func TestResolveSpecMD(t *testing.T) {
	fss := []proto.Filesystem{
		{Device: "/dev/vda2", Type: proto.TypeMDMember, UUID: "5ea1b0d0-0000-4000-8000-0000000008a0", Label: "debian:0"},
		{Device: "/dev/md0", Type: "ext4", UUID: "5ea1b0d0-0000-4000-8000-0000000008f2", MDArray: "debian:0", MDLevel: "raid1"},
		{Device: "/dev/md127", Type: "ext4", MDArray: "debian:home", MDLevel: "raid1"},
	}
	for _, tc := range []struct{ spec, want string }{
		{"/dev/md/0", "/dev/md0"},
		{"/dev/md/debian:0", "/dev/md0"},
		{"/dev/md0", "/dev/md0"},
		{"/dev/md/home", "/dev/md127"},
		{"/dev/md/debian:home", "/dev/md127"},
		{"UUID=5ea1b0d0-0000-4000-8000-0000000008f2", "/dev/md0"},
		{"/dev/md/other", ""},
	} {
		fs, ok := resolveSpec(tc.spec, fss)
		if got := fs.Device; got != tc.want || ok != (tc.want != "") {
			t.Errorf("resolveSpec(%q) = %q, %v; want %q", tc.spec, got, ok, tc.want)
		}
	}
}
