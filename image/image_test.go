package image

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const mib = 1 << 20

func TestProbeHandMade(t *testing.T) {
	dir := t.TempDir()
	fmtExt := func(s string) qext { return qext{extBackingFormat, []byte(s)} }
	many := make([]qext, 70)
	for i := range many {
		many[i] = qext{0x1000 + uint32(i), []byte("x")}
	}
	manyThenFormat := append(append([]qext{}, many...), fmtExt("raw"))

	cases := []struct {
		name    string
		data    []byte
		want    Header
		wantErr error
		errHas  string
	}{
		{name: "empty file", data: nil, want: Header{Format: "raw"}},
		{name: "raw zeros", data: make([]byte, 4096), want: Header{Format: "raw", Size: 4096}},
		{name: "raw text", data: []byte("hello, world\n"), want: Header{Format: "raw", Size: 13}},
		{name: "partial magic is raw", data: []byte("QFI"), want: Header{Format: "raw", Size: 3}},
		{name: "magic only", data: []byte("QFI\xfb"), wantErr: ErrFormat, errHas: "truncated qcow2 header"},
		{name: "v2 header cut at 40 bytes", data: qcow2Spec{version: 2, size: mib, trunc: 40}.bytes(),
			wantErr: ErrFormat, errHas: "truncated qcow2 header (40 of 72 bytes)"},
		{name: "v3 header cut at 80 bytes", data: qcow2Spec{version: 3, size: mib, trunc: 80}.bytes(),
			wantErr: ErrFormat, errHas: "truncated qcow2 header (80 of 104 bytes)"},
		{name: "v2 minimal", data: qcow2Spec{version: 2, size: 3 * mib}.bytes(),
			want: Header{Format: "qcow2", Version: 2, Size: 3 * mib}},
		{name: "v3 minimal", data: qcow2Spec{version: 3, size: 5 * mib}.bytes(),
			want: Header{Format: "qcow2", Version: 3, Size: 5 * mib}},
		{name: "v2 backing with format", data: qcow2Spec{version: 2, size: mib, backing: "base.img",
			exts: []qext{fmtExt("raw")}}.bytes(),
			want: Header{Format: "qcow2", Version: 2, Size: mib, BackingFile: "base.img", BackingFormat: "raw"}},
		{name: "v3 backing with format after unknown extensions", data: qcow2Spec{version: 3, size: mib, backing: "/srv/base.qcow2",
			exts: []qext{{extFeatureTable, make([]byte, 48)}, {0x12345678, []byte("abc")}, fmtExt("qcow2")}}.bytes(),
			want: Header{Format: "qcow2", Version: 3, Size: mib, BackingFile: "/srv/base.qcow2", BackingFormat: "qcow2"}},
		{name: "v3 extensions after a longer header_length", data: qcow2Spec{version: 3, size: mib, backing: "b", headerLen: 112,
			exts: []qext{fmtExt("raw")}}.bytes(),
			want: Header{Format: "qcow2", Version: 3, Size: mib, BackingFile: "b", BackingFormat: "raw"}},
		{name: "backing without format", data: qcow2Spec{version: 3, size: mib, backing: "base.img"}.bytes(),
			want: Header{Format: "qcow2", Version: 3, Size: mib, BackingFile: "base.img"}},
		{name: "format extension behind the end marker", data: qcow2Spec{version: 3, size: mib, backing: "b",
			exts: []qext{{0, nil}, fmtExt("raw")}}.bytes(),
			want: Header{Format: "qcow2", Version: 3, Size: mib, BackingFile: "b"}},
		{name: "oversized extension stops the walk", data: qcow2Spec{version: 3, size: mib, backing: "b",
			exts: []qext{{0x12345678, make([]byte, 5000)}, fmtExt("raw")}}.bytes(),
			want: Header{Format: "qcow2", Version: 3, Size: mib, BackingFile: "b"}},
		{name: "extension walk is bounded", data: qcow2Spec{version: 3, size: mib, backing: "b", exts: manyThenFormat}.bytes(),
			want: Header{Format: "qcow2", Version: 3, Size: mib, BackingFile: "b"}},
		{name: "extension walk runs into EOF", data: qcow2Spec{version: 3, size: mib, noEnd: true, backing: "b",
			exts: []qext{{0x12345678, []byte("12345678")}}}.bytes(),
			want: Header{Format: "qcow2", Version: 3, Size: mib, BackingFile: "b"}},
		{name: "format extension cut by EOF", data: qcow2Spec{version: 3, size: mib, noEnd: true,
			exts: []qext{{extBackingFormat, []byte("qcow2")}}, backingOff: 104 + 8, backingLen: 3, trunc: 104 + 8 + 3}.bytes(),
			want: Header{Format: "qcow2", Version: 3, Size: mib, BackingFile: "qco"}},
		{name: "header_length far away", data: qcow2Spec{version: 3, size: mib, backing: "b", headerLen: 0xfffffff0,
			exts: []qext{fmtExt("raw")}}.bytes(),
			want: Header{Format: "qcow2", Version: 3, Size: mib, BackingFile: "b"}},
		{name: "backing offset with zero length is no backing", data: qcow2Spec{version: 3, size: mib, backingOff: 512}.bytes(),
			want: Header{Format: "qcow2", Version: 3, Size: mib}},
		{name: "backing name of 1023 bytes", data: qcow2Spec{version: 3, size: mib, backing: strings.Repeat("n", 1023),
			exts: []qext{fmtExt("raw")}}.bytes(),
			want: Header{Format: "qcow2", Version: 3, Size: mib, BackingFile: strings.Repeat("n", 1023), BackingFormat: "raw"}},
		{name: "backing name of 1024 bytes", data: qcow2Spec{version: 3, size: mib, backing: strings.Repeat("n", 1024)}.bytes(),
			wantErr: ErrFormat, errHas: "backing file name of 1024 bytes"},
		{name: "absurd backing name length", data: qcow2Spec{version: 3, size: mib, backing: "b", backingLen: 0xffffffff}.bytes(),
			wantErr: ErrFormat, errHas: "backing file name of 4294967295 bytes"},
		{name: "backing name past EOF", data: qcow2Spec{version: 3, size: mib, backingOff: 1 << 30, backingLen: 8}.bytes(),
			wantErr: ErrFormat, errHas: "unreadable backing file name"},
		{name: "backing offset overflows int64", data: qcow2Spec{version: 3, size: mib, backingOff: 1 << 63, backingLen: 8}.bytes(),
			wantErr: ErrFormat, errHas: "unreadable backing file name"},
		{name: "backing name cut by EOF", data: qcow2Spec{version: 2, size: mib, backing: "base.img", trunc: 72 + 8 + 4}.bytes(),
			wantErr: ErrFormat, errHas: "unreadable backing file name"},
		{name: "v3 external data file", data: qcow2Spec{version: 3, size: mib, incompat: 4,
			exts: []qext{{extDataFile, []byte("/etc/shadow")}}}.bytes(),
			want: Header{Format: "qcow2", Version: 3, Size: mib, DataFile: true}},
		{name: "other incompatible bits are not a data file", data: qcow2Spec{version: 3, size: mib, incompat: 1 | 2 | 8}.bytes(),
			want: Header{Format: "qcow2", Version: 3, Size: mib}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := writeFile(t, filepath.Join(dir, strings.Repeat("x", i+1)+".img"), tc.data)
			h, err := Probe(p)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Probe = %+v, %v; want error %v", h, err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.errHas) || !strings.Contains(err.Error(), p) {
					t.Fatalf("error %q does not contain %q and the path", err, tc.errHas)
				}
				return
			}
			if err != nil {
				t.Fatalf("Probe: %v", err)
			}
			if h != tc.want {
				t.Fatalf("Probe =\n %+v\nwant\n %+v", h, tc.want)
			}
		})
	}
}

func TestProbeFileKinds(t *testing.T) {
	dir := t.TempDir()
	qcow := writeFile(t, filepath.Join(dir, "disk.qcow2"), qcow2Spec{version: 3, size: mib}.bytes())
	link := filepath.Join(dir, "link.qcow2")
	if err := os.Symlink(qcow, link); err != nil {
		t.Fatal(err)
	}
	dangling := filepath.Join(dir, "dangling")
	if err := os.Symlink(filepath.Join(dir, "nowhere"), dangling); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "sock")
	if fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0); err == nil {
		if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: sock}); err != nil {
			t.Fatal(err)
		}
		defer syscall.Close(fd)
	}

	cases := []struct {
		name       string
		path       string
		wantErr    error
		wantFormat string
	}{
		{"missing file", filepath.Join(dir, "missing.img"), ErrNotFound, ""},
		{"missing parent", filepath.Join(dir, "no", "such", "disk.img"), ErrNotFound, ""},
		{"dangling symlink", dangling, ErrNotFound, ""},
		{"directory", dir, ErrFormat, ""},
		{"symlink to qcow2", link, nil, "qcow2"},
		{"fifo", fifo, ErrFormat, ""},
		{"unix socket", sock, nil, ""}, // open fails: any error but no hang
		{"character device", "/dev/null", ErrFormat, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			type result struct {
				h   Header
				err error
			}
			done := make(chan result, 1)
			go func() { h, err := Probe(tc.path); done <- result{h, err} }()
			var r result
			select {
			case r = <-done:
			case <-time.After(10 * time.Second):
				t.Fatalf("Probe(%s) hangs", tc.path)
			}
			switch {
			case tc.name == "unix socket":
				if r.err == nil {
					t.Fatalf("Probe(socket) = %+v, want an error", r.h)
				}
			case tc.wantErr != nil:
				if !errors.Is(r.err, tc.wantErr) {
					t.Fatalf("Probe = %+v, %v; want %v", r.h, r.err, tc.wantErr)
				}
			default:
				if r.err != nil || r.h.Format != tc.wantFormat {
					t.Fatalf("Probe = %+v, %v; want format %s", r.h, r.err, tc.wantFormat)
				}
			}
		})
	}
}

func TestProbeBlockDevice(t *testing.T) {
	for _, p := range []string{"/dev/loop0", "/dev/loop1"} {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode()&os.ModeDevice == 0 || fi.Mode()&os.ModeCharDevice != 0 {
			continue
		}
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		f.Close()
		_, err = Probe(p)
		if err != nil && strings.Contains(err.Error(), "not a regular file or block device") {
			t.Fatalf("Probe(%s) refused a block device: %v", p, err)
		}
		return
	}
	t.Skip("no readable block device")
}

func TestProbeUnreadable(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads everything")
	}
	p := writeFile(t, filepath.Join(t.TempDir(), "secret.img"), []byte("data"))
	if err := os.Chmod(p, 0); err != nil {
		t.Fatal(err)
	}
	_, err := Probe(p)
	if err == nil || errors.Is(err, ErrNotFound) || !errors.Is(err, os.ErrPermission) {
		t.Fatalf("Probe(unreadable) = %v, want a permission error", err)
	}
}

// qemuImages makes a set of small images with qemu-img.
type qemuImages struct {
	raw, qcow3, qcow2v2                            string
	ovRaw, ovQcow, ovV2, ovNoFmt, ovRelative, data string
}

func makeQemuImages(t *testing.T) qemuImages {
	t.Helper()
	requireTool(t, "qemu-img")
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	im := qemuImages{
		raw: p("base.raw"), qcow3: p("base.qcow2"), qcow2v2: p("v2.qcow2"),
		ovRaw: p("ov-raw.qcow2"), ovQcow: p("ov-qcow.qcow2"), ovV2: p("ov-v2.qcow2"),
		ovNoFmt: p("ov-nofmt.qcow2"), ovRelative: p("ov-rel.qcow2"), data: p("data.qcow2"),
	}
	run(t, "qemu-img", "create", "-q", "-f", "raw", im.raw, "1M")
	run(t, "qemu-img", "create", "-q", "-f", "qcow2", im.qcow3, "2M")
	run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-o", "compat=0.10", im.qcow2v2, "3M")
	run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-b", im.raw, "-F", "raw", im.ovRaw)
	run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-b", im.qcow3, "-F", "qcow2", im.ovQcow)
	run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-o", "compat=0.10", "-b", im.raw, "-F", "raw", im.ovV2)
	run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-b", im.raw, "-F", "raw", im.ovNoFmt)
	dropBackingFormat(t, im.ovNoFmt)
	// A relative backing name, as "qemu-img create -b base.raw" records it.
	run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-b", "base.raw", "-F", "raw", im.ovRelative)
	writeFile(t, p("data.bin"), make([]byte, mib))
	run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-o", "data_file="+p("data.bin"), im.data, "1M")
	return im
}

func TestProbeQemuImages(t *testing.T) {
	im := makeQemuImages(t)
	cases := []struct {
		name string
		path string
		want Header
	}{
		{"raw", im.raw, Header{Format: "raw", Size: mib}},
		{"qcow2 v3", im.qcow3, Header{Format: "qcow2", Version: 3, Size: 2 * mib}},
		{"qcow2 v2 (compat=0.10)", im.qcow2v2, Header{Format: "qcow2", Version: 2, Size: 3 * mib}},
		{"v3 over raw, -F raw", im.ovRaw, Header{Format: "qcow2", Version: 3, Size: mib, BackingFile: im.raw, BackingFormat: "raw"}},
		{"v3 over qcow2, -F qcow2", im.ovQcow, Header{Format: "qcow2", Version: 3, Size: 2 * mib, BackingFile: im.qcow3, BackingFormat: "qcow2"}},
		{"v2 over raw, -F raw", im.ovV2, Header{Format: "qcow2", Version: 2, Size: mib, BackingFile: im.raw, BackingFormat: "raw"}},
		{"backing format not recorded", im.ovNoFmt, Header{Format: "qcow2", Version: 3, Size: mib, BackingFile: im.raw}},
		{"relative backing name", im.ovRelative, Header{Format: "qcow2", Version: 3, Size: mib, BackingFile: "base.raw", BackingFormat: "raw"}},
		{"external data file", im.data, Header{Format: "qcow2", Version: 3, Size: mib, DataFile: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, err := Probe(tc.path)
			if err != nil {
				t.Fatal(err)
			}
			if h != tc.want {
				t.Fatalf("Probe =\n %+v\nwant\n %+v", h, tc.want)
			}
		})
	}
}

func TestProbeDoesNotModify(t *testing.T) {
	im := makeQemuImages(t)
	for _, p := range []string{im.raw, im.qcow3, im.ovRaw, im.ovNoFmt} {
		fi0, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		sum := fileSHA(t, p)
		if _, err := Probe(p); err != nil {
			t.Fatal(err)
		}
		if _, err := Resolve(p, "", true); err != nil && !errors.Is(err, ErrBackingFile) {
			t.Fatal(err)
		}
		fi1, _ := os.Stat(p)
		if fileSHA(t, p) != sum || !fi1.ModTime().Equal(fi0.ModTime()) {
			t.Fatalf("probing changed %s", p)
		}
	}
}

func TestResolve(t *testing.T) {
	im := makeQemuImages(t)
	dir := t.TempDir()
	badHdr := writeFile(t, filepath.Join(dir, "absurd.qcow2"),
		qcow2Spec{version: 3, size: mib, backing: "b", backingLen: 0xffffffff}.bytes())
	cut := writeFile(t, filepath.Join(dir, "cut.qcow2"), qcow2Spec{version: 3, size: mib, trunc: 50}.bytes())
	vmdkBacking := writeFile(t, filepath.Join(dir, "vmdk-backing.qcow2"),
		qcow2Spec{version: 3, size: mib, backing: "/etc/passwd", exts: []qext{{extBackingFormat, []byte("vmdk")}}}.bytes())
	rawSize := func(p string) int64 {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}

	cases := []struct {
		name     string
		path     string
		explicit string
		allow    bool
		want     Header // checked when wantErr == nil
		wantErr  error
		errHas   []string
	}{
		// Detection.
		{name: "detect raw", path: im.raw, want: Header{Format: "raw", Size: mib}},
		{name: "detect qcow2", path: im.qcow3, want: Header{Format: "qcow2", Version: 3, Size: 2 * mib}},
		{name: "detect qcow2 v2", path: im.qcow2v2, want: Header{Format: "qcow2", Version: 2, Size: 3 * mib}},
		{name: "missing", path: filepath.Join(dir, "nope"), wantErr: ErrNotFound},
		{name: "missing with explicit raw", path: filepath.Join(dir, "nope"), explicit: "raw", wantErr: ErrNotFound},
		{name: "directory", path: dir, wantErr: ErrFormat},
		{name: "directory with explicit raw", path: dir, explicit: "raw", wantErr: ErrFormat},

		// --format values.
		{name: "bad format", path: im.raw, explicit: "vmdk", wantErr: ErrFormat, errHas: []string{`--format "vmdk"`, "raw or qcow2"}},
		{name: "format is case sensitive", path: im.raw, explicit: "RAW", wantErr: ErrFormat},
		{name: "bad format checked before the file", path: filepath.Join(dir, "nope"), explicit: "qed", wantErr: ErrFormat},
		{name: "explicit raw on raw", path: im.raw, explicit: "raw", want: Header{Format: "raw", Size: mib}},
		{name: "explicit qcow2 on qcow2", path: im.qcow3, explicit: "qcow2", want: Header{Format: "qcow2", Version: 3, Size: 2 * mib}},
		{name: "explicit qcow2 on raw", path: im.raw, explicit: "qcow2", wantErr: ErrFormat, errHas: []string{"not a qcow2 image", "--format raw"}},

		// --format raw ignores whatever the qcow2 header says.
		{name: "explicit raw on qcow2 with backing", path: im.ovRaw, explicit: "raw",
			want: Header{Format: "raw", Size: rawSize(im.ovRaw)}},
		{name: "explicit raw on qcow2 without recorded backing format", path: im.ovNoFmt, explicit: "raw",
			want: Header{Format: "raw", Size: rawSize(im.ovNoFmt)}},
		{name: "explicit raw on qcow2 with data file", path: im.data, explicit: "raw",
			want: Header{Format: "raw", Size: rawSize(im.data)}},
		{name: "explicit raw on absurd qcow2 header", path: badHdr, explicit: "raw",
			want: Header{Format: "raw", Size: rawSize(badHdr)}},
		{name: "explicit raw on truncated qcow2 header", path: cut, explicit: "raw", want: Header{Format: "raw", Size: 50}},
		{name: "absurd qcow2 header detected", path: badHdr, wantErr: ErrFormat},
		{name: "truncated qcow2 header detected", path: cut, wantErr: ErrFormat, errHas: []string{"truncated"}},
		{name: "truncated qcow2 header with explicit qcow2", path: cut, explicit: "qcow2", wantErr: ErrFormat},

		// Backing files.
		{name: "backing refused by default", path: im.ovRaw, wantErr: ErrBackingFile,
			errHas: []string{im.raw, "--allow-backing", "--format qcow2"}},
		{name: "v2 backing refused by default", path: im.ovV2, wantErr: ErrBackingFile},
		{name: "backing allowed by explicit qcow2", path: im.ovRaw, explicit: "qcow2",
			want: Header{Format: "qcow2", Version: 3, Size: mib, BackingFile: im.raw, BackingFormat: "raw"}},
		{name: "backing allowed by allowBacking", path: im.ovQcow, allow: true,
			want: Header{Format: "qcow2", Version: 3, Size: 2 * mib, BackingFile: im.qcow3, BackingFormat: "qcow2"}},
		{name: "v2 backing allowed by allowBacking", path: im.ovV2, allow: true,
			want: Header{Format: "qcow2", Version: 2, Size: mib, BackingFile: im.raw, BackingFormat: "raw"}},
		{name: "backing allowed by both", path: im.ovRaw, explicit: "qcow2", allow: true,
			want: Header{Format: "qcow2", Version: 3, Size: mib, BackingFile: im.raw, BackingFormat: "raw"}},
		{name: "unrecorded backing format refused by default", path: im.ovNoFmt, wantErr: ErrBackingFile, errHas: []string{"--allow-backing"}},
		{name: "unrecorded backing format refused with allowBacking", path: im.ovNoFmt, allow: true, wantErr: ErrBackingFile,
			errHas: []string{"qemu-img rebase", "-u", im.raw, im.ovNoFmt, "does not record"}},
		{name: "unrecorded backing format refused with explicit qcow2", path: im.ovNoFmt, explicit: "qcow2", wantErr: ErrBackingFile,
			errHas: []string{"qemu-img rebase"}},
		{name: "unsupported backing format refused", path: vmdkBacking, allow: true, wantErr: ErrBackingFile,
			errHas: []string{"qemu-img rebase", `"vmdk"`}},

		// External data files name a host file, like backing files, and are refused.
		{name: "data file refused", path: im.data, wantErr: ErrFormat, errHas: []string{"external data file", "qemu-img convert"}},
		{name: "data file refused with allowBacking", path: im.data, allow: true, wantErr: ErrFormat},
		{name: "data file refused with explicit qcow2", path: im.data, explicit: "qcow2", allow: true, wantErr: ErrFormat},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, err := Resolve(tc.path, tc.explicit, tc.allow)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Resolve = %+v, %v; want error %v", h, err, tc.wantErr)
				}
				for _, s := range tc.errHas {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not contain %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			if h != tc.want {
				t.Fatalf("Resolve =\n %+v\nwant\n %+v", h, tc.want)
			}
		})
	}
}

// The backing-file refusal must not depend on how the image is reached.
func TestResolveBackingThroughSymlink(t *testing.T) {
	im := makeQemuImages(t)
	link := filepath.Join(t.TempDir(), "innocent.raw")
	if err := os.Symlink(im.ovRaw, link); err != nil {
		t.Fatal(err)
	}
	if _, err := Resolve(link, "", false); !errors.Is(err, ErrBackingFile) {
		t.Fatalf("Resolve(symlink to overlay) = %v, want ErrBackingFile", err)
	}
}

// A raw image whose guest wrote a qcow2 header naming a host file is seen
// as qcow2 with a backing file and refused unless the user says raw.
func TestResolveGuestForgedHeader(t *testing.T) {
	p := filepath.Join(t.TempDir(), "guest.img")
	forged := qcow2Spec{version: 3, size: mib, backing: "/etc/shadow", exts: []qext{{extBackingFormat, []byte("raw")}}}.bytes()
	writeFile(t, p, append(forged, bytes.Repeat([]byte{0}, mib-len(forged))...))
	if _, err := Resolve(p, "", false); !errors.Is(err, ErrBackingFile) || !strings.Contains(err.Error(), "/etc/shadow") {
		t.Fatalf("Resolve(forged) = %v, want ErrBackingFile naming /etc/shadow", err)
	}
	h, err := Resolve(p, "raw", false)
	if err != nil || h != (Header{Format: "raw", Size: mib}) {
		t.Fatalf("Resolve(forged, raw) = %+v, %v", h, err)
	}
}

func TestFormats(t *testing.T) {
	if strings.Join(Formats, ",") != "raw,qcow2" {
		t.Fatalf("Formats = %v", Formats)
	}
	for _, f := range Formats {
		p := writeFile(t, filepath.Join(t.TempDir(), "x"), qcow2Spec{version: 3, size: mib}.bytes())
		if _, err := Resolve(p, f, false); err != nil {
			t.Errorf("Resolve(--format %s) = %v", f, err)
		}
	}
}
