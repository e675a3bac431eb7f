package image

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgbake/imgbake/internal/vmtest"
)

const (
	extBackingFormat = 0xe2792aca
	extFeatureTable  = 0x6803f857
	extDataFile      = 0x44415441
)

// requireTool returns the path of a qemu-utils binary; a missing one is a
// missing prerequisite (see internal/vmtest).
func requireTool(t *testing.T, name string) string {
	t.Helper()
	return vmtest.LookPath(t, name, "qemu-utils")
}

// run runs a qemu-utils command and fails the test on error.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	bin := requireTool(t, name)
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// qemuIOWrite fills [off, off+len) of a disk with pattern via qemu-io.
func qemuIOWrite(t *testing.T, path, format string, pattern byte, off, length string) {
	t.Helper()
	out := run(t, "qemu-io", "-f", format, "-c",
		"write -P 0x"+hex.EncodeToString([]byte{pattern})+" "+off+" "+length, path)
	if !strings.Contains(out, "wrote") {
		t.Fatalf("qemu-io write on %s: %s", path, out)
	}
}

// virtualBytes returns the guest-visible contents of a disk image.
func virtualBytes(t *testing.T, path, format string) []byte {
	t.Helper()
	if format == "raw" {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	out := filepath.Join(t.TempDir(), "virtual.raw")
	run(t, "qemu-img", "convert", "-q", "-f", format, "-O", "raw", path, out)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func fileSHA(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func writeFile(t *testing.T, path string, b []byte) string {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// checkRun asserts that b[off:off+n] is all pattern.
func checkRun(t *testing.T, what string, b []byte, off, n int, pattern byte) {
	t.Helper()
	if len(b) < off+n {
		t.Fatalf("%s: %d bytes, want at least %d", what, len(b), off+n)
	}
	for j := off; j < off+n; j++ {
		if b[j] != pattern {
			t.Fatalf("%s: byte %d is %#x, want %#x", what, j, b[j], pattern)
		}
	}
}

// qext is one qcow2 header extension.
type qext struct {
	typ  uint32
	data []byte
}

// qcow2Spec describes a hand-made qcow2 header: only the fields Probe
// reads are meaningful, the rest is zero.
type qcow2Spec struct {
	version    uint32
	size       uint64
	backing    string
	backingOff uint64 // 0: right after the extensions (if backing != "")
	backingLen uint32 // 0: len(backing)
	incompat   uint64
	headerLen  uint32 // v3 header_length; 0: 104
	exts       []qext
	noEnd      bool // omit the end-of-extensions marker
	trunc      int  // keep only this many bytes (0: all)
}

func (s qcow2Spec) bytes() []byte {
	hl := uint32(72)
	if s.version >= 3 {
		hl = 104
		if s.headerLen != 0 {
			hl = s.headerLen
		}
	}
	b := make([]byte, 104)
	copy(b, qcow2Magic)
	binary.BigEndian.PutUint32(b[4:], s.version)
	binary.BigEndian.PutUint32(b[20:], 16) // cluster_bits
	binary.BigEndian.PutUint64(b[24:], s.size)
	if s.version >= 3 {
		binary.BigEndian.PutUint64(b[72:], s.incompat)
		binary.BigEndian.PutUint32(b[96:], 4) // refcount_order
		binary.BigEndian.PutUint32(b[100:], hl)
	}
	// Extensions follow the header: at 72 for v2, at header_length for v3.
	if s.version < 3 {
		b = b[:72]
	} else if int(hl) > 104 && int(hl) < 4096 {
		b = append(b, make([]byte, int(hl)-104)...)
	}
	for _, e := range s.exts {
		var eh [8]byte
		binary.BigEndian.PutUint32(eh[:4], e.typ)
		binary.BigEndian.PutUint32(eh[4:], uint32(len(e.data)))
		b = append(b, eh[:]...)
		b = append(b, e.data...)
		for len(b)%8 != 0 {
			b = append(b, 0)
		}
	}
	if !s.noEnd {
		b = append(b, make([]byte, 8)...)
	}
	if s.backing != "" || s.backingOff != 0 {
		off := s.backingOff
		if off == 0 {
			off = uint64(len(b))
		}
		n := s.backingLen
		if n == 0 {
			n = uint32(len(s.backing))
		}
		binary.BigEndian.PutUint64(b[8:], off)
		binary.BigEndian.PutUint32(b[16:], n)
		if s.backing != "" && off == uint64(len(b)) {
			b = append(b, s.backing...)
		}
	}
	if s.trunc > 0 && s.trunc < len(b) {
		b = b[:s.trunc]
	}
	return b
}

// dropBackingFormat rewrites the backing-format header extension of a
// qemu-made qcow2 into an unknown extension type, which QEMU ignores: the
// image then names a backing file without recording its format. (qemu-img
// 7+ refuses to make such images directly.)
func dropBackingFormat(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var magic [4]byte
	binary.BigEndian.PutUint32(magic[:], extBackingFormat)
	i := bytes.Index(b[:4096], magic[:])
	if i < 0 {
		t.Fatalf("%s has no backing format extension", path)
	}
	binary.BigEndian.PutUint32(b[i:], 0x7a7a7a7a)
	writeFile(t, path, b)
}
