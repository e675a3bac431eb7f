package agent

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/imgbake/imgbake/appliance/proto"
)

// testdata/lvm-pv-head.bin.gz is the first MiB of the PV partition of
// testimages' debian-lvm.raw, written by the host's LVM 2.03.16 (pvcreate,
// vgcreate -s 4M vg0, lvcreate root 900M, swap 8M, data 16M, alt 8M): real
// on-disk format, checked here against what LVM itself reported when the
// image was built (pe_start 2048 sectors, LVs at extents 0, 225, 227, 231).
const fixturePVUUID = "5ea1b0-0000-4000-8000-0000-0000-0000e6"

func loadPVFixture(t *testing.T) []byte {
	t.Helper()
	f, err := os.Open("testdata/lvm-pv-head.bin.gz")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLVMRealPV(t *testing.T) {
	disk := loadPVFixture(t)
	lb, err := readPVLabel(bytes.NewReader(disk))
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.ReplaceAll(fixturePVUUID, "-", ""); lb.uuid != want {
		t.Errorf("uuid %q, want %q", lb.uuid, want)
	}
	if lb.size != 2027520*512 {
		t.Errorf("device size %d, want %d", lb.size, 2027520*512)
	}
	if len(lb.mdas) != 1 || lb.mdas[0].offset != 4096 {
		t.Fatalf("metadata areas %+v, want one at 4096", lb.mdas)
	}
	text, err := readMetadataArea(bytes.NewReader(disk), lb.mdas[0])
	if err != nil {
		t.Fatal(err)
	}
	sec, err := parseLVMText(text)
	if err != nil {
		t.Fatal(err)
	}
	vg, err := parseVG(sec)
	if err != nil {
		t.Fatal(err)
	}
	if vg.name != "vg0" || vg.extentSize != 8192 || !vg.writable || vg.seqno < 5 {
		t.Errorf("vg %s extent %d writable %v seqno %d", vg.name, vg.extentSize, vg.writable, vg.seqno)
	}
	if pv := vg.pvs["pv0"]; pv == nil || pv.id != fixturePVUUID || pv.peStart != 2048 || pv.peCount != 247 {
		t.Fatalf("pv0 = %+v", vg.pvs["pv0"])
	}
	dev := func(pv string) (string, bool) { return "254:2", pv == "pv0" }
	want := []struct {
		name    string
		extents uint64
		first   uint64 // extent on pv0
	}{{"root", 225, 0}, {"swap", 2, 225}, {"data", 4, 227}, {"alt", 2, 231}}
	if len(vg.lvs) != len(want) {
		t.Fatalf("%d LVs, want %d", len(vg.lvs), len(want))
	}
	for i, w := range want {
		lv := vg.lvs[i]
		if lv.name != w.name || lv.extents() != w.extents || lv.segType() != "linear" || !hasFlag(lv.status, "VISIBLE") {
			t.Errorf("LV %d: %s, %d extents, %s, status %v; want %s, %d, linear", i, lv.name, lv.extents(), lv.segType(), lv.status, w.name, w.extents)
			continue
		}
		table, err := vg.table(lv, dev)
		if err != nil {
			t.Errorf("%s: %v", lv.name, err)
			continue
		}
		exp := []dmTarget{{start: 0, length: w.extents * 8192, typ: "linear", params: "254:2 " + strconv.FormatUint(2048+w.first*8192, 10)}}
		if !reflect.DeepEqual(table, exp) {
			t.Errorf("%s: table %+v, want %+v", lv.name, table, exp)
		}
	}
	// A flipped byte in the metadata text must be noticed.
	bad := append([]byte(nil), disk...)
	at := bytes.Index(bad, []byte(`logical_volumes`))
	if at < 0 {
		t.Fatal("fixture has no logical_volumes")
	}
	// The last copy of the text in the buffer is the committed one.
	at = bytes.LastIndex(bad, []byte(`logical_volumes`))
	bad[at] = 'L'
	if _, err := readMetadataArea(bytes.NewReader(bad), lb.mdas[0]); err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Errorf("corrupted metadata: err = %v", err)
	}
}

func TestLVMLabelErrors(t *testing.T) {
	disk := loadPVFixture(t)
	if _, err := readPVLabel(bytes.NewReader(make([]byte, 4096))); !errors.Is(err, errNoPVLabel) {
		t.Errorf("zeros: %v", err)
	}
	if _, err := readPVLabel(bytes.NewReader(disk[:1024])); err == nil {
		t.Error("short device accepted")
	}
	bad := append([]byte(nil), disk[:8192]...)
	bad[512+40] ^= 0xff // inside the PV uuid, covered by the label checksum
	if _, err := readPVLabel(bytes.NewReader(bad)); err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Errorf("corrupted label: %v", err)
	}
}

// TestLVMWrappedMetadata checks reading a metadata text that wraps around
// the end of the circular buffer.
func TestLVMWrappedMetadata(t *testing.T) {
	const mdaOff, mdaSize = 4096, 4096
	text := []byte("vg1 {\nid = \"x\"\nseqno = 7\nextent_size = 8\nphysical_volumes {\n}\n}\n")
	disk := make([]byte, mdaOff+mdaSize)
	le := binary.LittleEndian
	hdr := disk[mdaOff : mdaOff+512]
	copy(hdr[4:20], lvmMDAMagic)
	le.PutUint32(hdr[20:24], 1)
	le.PutUint64(hdr[24:32], mdaOff)
	le.PutUint64(hdr[32:40], mdaSize)
	start := uint64(mdaSize - 20) // 20 bytes at the end, the rest after the header
	le.PutUint64(hdr[40:48], start)
	le.PutUint64(hdr[48:56], uint64(len(text)))
	le.PutUint32(hdr[56:60], lvmCRC(text))
	le.PutUint32(hdr[0:4], lvmCRC(hdr[4:]))
	copy(disk[mdaOff+start:], text[:20])
	copy(disk[mdaOff+512:], text[20:])
	got, err := readMetadataArea(bytes.NewReader(disk), lvmArea{mdaOff, mdaSize})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, text) {
		t.Errorf("got %q", got)
	}
	// An ignored copy reads as no metadata.
	le.PutUint32(hdr[60:64], lvmRawIgnored)
	le.PutUint32(hdr[0:4], lvmCRC(hdr[4:]))
	if got, err := readMetadataArea(bytes.NewReader(disk), lvmArea{mdaOff, mdaSize}); err != nil || got != nil {
		t.Errorf("ignored copy: %q, %v", got, err)
	}
}

func TestParseLVMText(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     map[string]any // top-level key → value (sections as map[string]any)
		err      string
	}{
		{name: "scalars", in: "a = 1\nb = -2 # comment\nc = \"s\\\"q\\\\\"\nd = 1.5\n",
			want: map[string]any{"a": int64(1), "b": int64(-2), "c": `s"q\`, "d": 1.5}},
		{name: "lists", in: "status = [\"READ\", \"WRITE\"]\nstripes = [\n\"pv0\", 0,\n\"pv1\", 12\n]\nflags = []\n",
			want: map[string]any{"status": []any{"READ", "WRITE"}, "stripes": []any{"pv0", int64(0), "pv1", int64(12)}, "flags": []any{}}},
		{name: "sections", in: "my-vg.1+x {\n id = \"i\"\n sub { n = 3 }\n}\ntail = 0",
			want: map[string]any{"my-vg.1+x": map[string]any{"id": "i", "sub": map[string]any{"n": int64(3)}}, "tail": int64(0)}},
		{name: "empty", in: "# only a comment\n", want: map[string]any{}},
		{name: "unclosed string", in: "a = \"abc", err: "string is not closed"},
		{name: "unclosed section", in: "a {\n b = 1\n", err: "not closed"},
		{name: "stray brace", in: "a = 1\n}\n", err: "unexpected '}'"},
		{name: "missing value", in: "a =", err: "missing value"},
		{name: "bad value", in: "a = abc", err: "bad value"},
		{name: "no operator", in: "a 1", err: "expected '=' or '{'"},
		{name: "nested list", in: "a = [[1]]", err: "bad value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sec, err := parseLVMText([]byte(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := sectionMap(sec); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %#v\nwant %#v", got, tc.want)
			}
		})
	}
}

func sectionMap(s *lvmSection) map[string]any {
	m := map[string]any{}
	for _, k := range s.keys {
		if sub, ok := s.vals[k].(*lvmSection); ok {
			m[k] = sectionMap(sub)
		} else {
			m[k] = s.vals[k]
		}
	}
	return m
}

const twoPVMetadata = `
big-vg {
	id = "vgid-1"
	seqno = 4
	status = ["RESIZEABLE", "READ", "WRITE"]
	extent_size = 8
	physical_volumes {
		pv0 { id = "pv-a" pe_start = 2048 pe_count = 100 }
		pv1 { id = "pv-b" pe_start = 4096 pe_count = 100 }
	}
	logical_volumes {
		str {
			id = "lv-s"
			status = ["READ", "WRITE", "VISIBLE"]
			segment1 { start_extent = 0 extent_count = 20 type = "striped" stripe_count = 2 stripe_size = 128
				stripes = ["pv0", 10, "pv1", 0] }
		}
		two-seg {
			id = "lv-t"
			status = ["READ", "VISIBLE"]
			segment2 { start_extent = 5 extent_count = 3 type = "striped" stripe_count = 1 stripes = ["pv1", 50] }
			segment1 { start_extent = 0 extent_count = 5 type = "striped" stripe_count = 1 stripes = ["pv0", 0] }
		}
		thin1 {
			id = "lv-th"
			status = ["READ", "WRITE", "VISIBLE"]
			segment1 { start_extent = 0 extent_count = 4 type = "thin" thin_pool = "pool" }
		}
		gap {
			id = "lv-g"
			status = ["READ", "WRITE", "VISIBLE"]
			segment1 { start_extent = 2 extent_count = 4 type = "striped" stripe_count = 1 stripes = ["pv0", 90] }
		}
		past-end {
			id = "lv-p"
			status = ["READ", "WRITE", "VISIBLE"]
			segment1 { start_extent = 0 extent_count = 4 type = "striped" stripe_count = 1 stripes = ["pv1", 98] }
		}
	}
}
contents = "Text Format Volume Group"
version = 1
`

func TestLVMTables(t *testing.T) {
	sec, err := parseLVMText([]byte(twoPVMetadata))
	if err != nil {
		t.Fatal(err)
	}
	vg, err := parseVG(sec)
	if err != nil {
		t.Fatal(err)
	}
	if vg.name != "big-vg" || len(vg.pvNames) != 2 || len(vg.lvs) != 5 {
		t.Fatalf("vg %s, pvs %v, %d LVs", vg.name, vg.pvNames, len(vg.lvs))
	}
	devs := map[string]string{"pv0": "8:1", "pv1": "8:17"}
	dev := func(p string) (string, bool) { d, ok := devs[p]; return d, ok }
	lv := func(name string) *lvmLV {
		for _, l := range vg.lvs {
			if l.name == name {
				return l
			}
		}
		t.Fatalf("no LV %s", name)
		return nil
	}
	for _, tc := range []struct {
		lv, typ string
		want    []dmTarget
		err     string
	}{
		{lv: "str", typ: "striped", want: []dmTarget{{0, 160, "striped", "2 128 8:1 2128 8:17 4096"}}},
		{lv: "two-seg", typ: "linear", want: []dmTarget{{0, 40, "linear", "8:1 2048"}, {40, 24, "linear", "8:17 4496"}}},
		{lv: "thin1", typ: "thin", err: "segment type thin is not supported"},
		{lv: "gap", typ: "linear", err: "gap at extent 0"},
		{lv: "past-end", typ: "linear", err: "past the end of PV pv1"},
	} {
		l := lv(tc.lv)
		if got := l.segType(); got != tc.typ {
			t.Errorf("%s: type %q, want %q", tc.lv, got, tc.typ)
		}
		got, err := vg.table(l, dev)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err = %v, want %q", tc.lv, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: table %+v, %v; want %+v", tc.lv, got, err, tc.want)
		}
	}
	var unsupported errUnsupportedLV
	if _, err := vg.table(lv("thin1"), dev); !errors.As(err, &unsupported) {
		t.Errorf("thin: %T", err)
	}
	delete(devs, "pv1")
	if _, err := vg.table(lv("str"), dev); err == nil || !strings.Contains(err.Error(), "PV pv1 (pv-b) is missing") {
		t.Errorf("missing PV: %v", err)
	}
	if hasFlag(lv("two-seg").status, "WRITE") {
		t.Error("two-seg is read-only in the metadata")
	}
}

func TestDMUUID(t *testing.T) {
	if got := dmUUID("dGLctz-wcyF-ZBVd-4ght-aXq5-2nMY-g6pUwq", "Jzc8a3-Jugt-Uf6P-yyDj-9zDs-KEjS-RF63il"); got != "LVM-dGLctzwcyFZBVd4ghtaXq52nMYg6pUwqJzc8a3JugtUf6PyyDj9zDsKEjSRF63il" {
		t.Errorf("dmUUID = %q", got)
	}
}

func TestDMTablePayload(t *testing.T) {
	b := dmTablePayload([]dmTarget{{0, 100, "linear", "8:1 2048"}, {100, 8, "striped", "2 128 8:1 0 8:17 0"}})
	le := binary.LittleEndian
	// struct dm_target_spec: sector_start, length, status, next, target_type[16]; then params.
	next := le.Uint32(b[20:24])
	if next%8 != 0 || next < 40+9 {
		t.Fatalf("next = %d", next)
	}
	if le.Uint64(b[0:8]) != 0 || le.Uint64(b[8:16]) != 100 || string(bytes.TrimRight(b[24:40], "\x00")) != "linear" ||
		string(b[40:40+8]) != "8:1 2048" || b[48] != 0 {
		t.Errorf("first target: % x", b[:next])
	}
	s := b[next:]
	if le.Uint64(s[0:8]) != 100 || le.Uint64(s[8:16]) != 8 || string(bytes.TrimRight(s[24:40], "\x00")) != "striped" ||
		!bytes.HasPrefix(s[40:], []byte("2 128 8:1 0 8:17 0\x00")) || len(s)%8 != 0 {
		t.Errorf("second target: % x", s)
	}
}

func TestResolveSpecLVM(t *testing.T) {
	fss := []proto.Filesystem{
		{Device: "/dev/vda1", Type: "ext4", UUID: "1111"},
		{Device: "/dev/vda2", Type: "LVM2_member"},
		{Device: "/dev/mapper/vg0-root", Type: "ext4", UUID: "2222", VG: "vg0", LV: "root"},
		{Device: "/dev/mapper/my--vg-da--ta", Type: "xfs", VG: "my-vg", LV: "da-ta"},
	}
	for _, tc := range []struct{ spec, want string }{
		{"/dev/mapper/vg0-root", "/dev/mapper/vg0-root"},
		{"/dev/vg0/root", "/dev/mapper/vg0-root"},
		{"UUID=2222", "/dev/mapper/vg0-root"},
		{"/dev/disk/by-id/dm-name-vg0-root", "/dev/mapper/vg0-root"},
		{"/dev/my-vg/da-ta", "/dev/mapper/my--vg-da--ta"},
		{"/dev/mapper/my--vg-da--ta", "/dev/mapper/my--vg-da--ta"},
		{"/dev/vg0/swap", ""},
		{"/dev/vg1/root", ""},
	} {
		fs, ok := resolveSpec(tc.spec, fss)
		if got := fs.Device; !ok && got != "" || ok && got != tc.want || !ok && tc.want != "" {
			t.Errorf("resolveSpec(%q) = %q, %v; want %q", tc.spec, got, ok, tc.want)
		}
	}
}

// TestOSRootAt checks multi-boot detection of one directory tree: an OS
// root is a directory with /etc/os-release or /usr/lib/os-release.
func TestOSRootAt(t *testing.T) {
	base := t.TempDir()
	write := func(p, data string) {
		t.Helper()
		full := filepath.Join(base, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("debian/etc/os-release", "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n")
	write("debian/etc/hostname", "# set by the installer\n\ndeb1\n")
	write("usrlib/usr/lib/os-release", "ID=fedora\nVERSION_ID=40\n")
	write("usrlib/etc/sysconfig/network", "HOSTNAME=fed1\n")
	if err := os.Symlink("../usr/lib/os-release", filepath.Join(base, "usrlib/etc/os-release-link")); err != nil {
		t.Fatal(err)
	}
	write("data/marker", "no OS here\n")
	// An absolute symlink must resolve inside the tree, not on the host.
	if err := os.MkdirAll(filepath.Join(base, "escape/etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/os-release", filepath.Join(base, "escape/etc/os-release")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		dir   string
		found bool
		want  proto.OSRoot
	}{
		{"debian", true, proto.OSRoot{ID: "debian", VersionID: "12", PrettyName: "Debian GNU/Linux 12 (bookworm)", Hostname: "deb1"}},
		{"usrlib", true, proto.OSRoot{ID: "fedora", VersionID: "40", Hostname: "fed1"}},
		{"data", false, proto.OSRoot{}},
		{"escape", false, proto.OSRoot{}},
	} {
		fd, err := unix.Open(filepath.Join(base, tc.dir), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		got, found := osRootAt(fd)
		unix.Close(fd)
		if found != tc.found || got != tc.want {
			t.Errorf("%s: %+v, %v; want %+v, %v", tc.dir, got, found, tc.want, tc.found)
		}
	}
}
