package image

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const (
	baseSize = 2 * mib
	basePat  = 0x11 // written to [1M, 1M+64k) of every base
	ovPat    = 0xab // written to [0, 64k) through the overlay
	k64      = 64 << 10
)

// makeBase creates a 2 MiB base image in dir with basePat at 1M.
func makeBase(t *testing.T, dir, name, format string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	run(t, "qemu-img", "create", "-q", "-f", format, p, "2M")
	qemuIOWrite(t, p, format, basePat, "1M", "64k")
	return p
}

// checkBaseData asserts the guest view: ovPat at 0 if written, basePat at
// 1M, zeros elsewhere.
func checkBaseData(t *testing.T, what string, b []byte, withOverlay bool) {
	t.Helper()
	if len(b) != baseSize {
		t.Fatalf("%s: %d bytes, want %d", what, len(b), baseSize)
	}
	first := byte(0)
	if withOverlay {
		first = ovPat
	}
	checkRun(t, what, b, 0, k64, first)
	checkRun(t, what, b, k64, mib-k64, 0)
	checkRun(t, what, b, mib, k64, basePat)
	checkRun(t, what, b, mib+k64, mib-k64, 0)
}

func newOverlay(t *testing.T, dir, base, format string) *Overlay {
	t.Helper()
	ov, err := NewOverlay(context.Background(), dir, base, format)
	if err != nil {
		t.Fatalf("NewOverlay(%s, %s): %v", base, format, err)
	}
	return ov
}

var baseFormats = []string{"raw", "qcow2"}

func TestNewOverlay(t *testing.T) {
	requireTool(t, "qemu-img")
	for _, format := range baseFormats {
		t.Run(format, func(t *testing.T) {
			baseDir, runDir := t.TempDir(), t.TempDir()
			base := makeBase(t, baseDir, "disk."+format, format)
			sum := fileSHA(t, base)
			ov := newOverlay(t, runDir, base, format)

			if ov.Base != base || ov.BaseFormat != format || filepath.Dir(ov.Path) != runDir ||
				!strings.HasPrefix(filepath.Base(ov.Path), "overlay-") || !strings.HasSuffix(ov.Path, "-disk."+format+".qcow2") {
				t.Fatalf("overlay %+v", ov)
			}
			h, err := Probe(ov.Path)
			if err != nil {
				t.Fatal(err)
			}
			want := Header{Format: "qcow2", Version: 3, Size: baseSize, BackingFile: base, BackingFormat: format}
			if h != want {
				t.Fatalf("overlay header %+v, want %+v", h, want)
			}
			// The overlay is exactly what Resolve accepts with --allow-backing.
			if _, err := Resolve(ov.Path, "", true); err != nil {
				t.Fatalf("Resolve(overlay): %v", err)
			}
			checkBaseData(t, "fresh overlay", virtualBytes(t, ov.Path, "qcow2"), false)
			if fileSHA(t, base) != sum {
				t.Fatal("creating the overlay changed the base")
			}
		})
	}
}

func TestNewOverlayRelativePaths(t *testing.T) {
	requireTool(t, "qemu-img")
	root := t.TempDir()
	base := makeBase(t, root, "disk:1.raw", "raw")
	if err := os.Mkdir(filepath.Join(root, "run:dir"), 0o700); err != nil {
		t.Fatal(err)
	}
	t.Chdir(root)
	// Relative names with a colon must not be read as "protocol:" by qemu-img.
	ov := newOverlay(t, "run:dir", "disk:1.raw", "raw")
	if !filepath.IsAbs(ov.Path) || !filepath.IsAbs(ov.Base) || ov.Base != base {
		t.Fatalf("overlay paths not absolute: %+v", ov)
	}
	h, err := Probe(ov.Path)
	if err != nil || h.BackingFile != base || h.BackingFormat != "raw" {
		t.Fatalf("Probe(overlay) = %+v, %v", h, err)
	}
	qemuIOWrite(t, ov.Path, "qcow2", ovPat, "0", "64k")
	if err := ov.Export(context.Background(), "out:put.raw", Output{Format: "raw"}); err != nil {
		t.Fatalf("Export to a relative name with a colon: %v", err)
	}
	checkBaseData(t, "export", virtualBytes(t, filepath.Join(root, "out:put.raw"), "raw"), true)
	// Still valid after leaving the directory.
	t.Chdir(t.TempDir())
	if err := ov.Commit(context.Background()); err != nil {
		t.Fatalf("Commit from another directory: %v", err)
	}
	checkBaseData(t, "committed base", virtualBytes(t, base, "raw"), true)
}

func TestNewOverlayErrors(t *testing.T) {
	requireTool(t, "qemu-img")
	baseDir := t.TempDir()
	raw := makeBase(t, baseDir, "disk.raw", "raw")
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()

	cases := []struct {
		name    string
		ctx     context.Context
		dir     string
		base    string
		format  string
		wantErr error
	}{
		{"missing base", context.Background(), "", filepath.Join(baseDir, "missing.raw"), "raw", ErrQemuImg},
		{"raw base declared qcow2", context.Background(), "", raw, "qcow2", ErrQemuImg},
		{"unknown base format", context.Background(), "", raw, "nosuchfmt", ErrQemuImg},
		{"missing run dir", context.Background(), filepath.Join(baseDir, "no", "dir"), raw, "raw", os.ErrNotExist},
		{"cancelled context", cancelled, "", raw, "raw", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := tc.dir
			if dir == "" {
				dir = t.TempDir()
			}
			sum := fileSHA(t, raw)
			ov, err := NewOverlay(tc.ctx, dir, tc.base, tc.format)
			if err == nil {
				t.Fatalf("NewOverlay = %+v, want an error", ov)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("NewOverlay = %v, want %v", err, tc.wantErr)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Fatalf("failed NewOverlay left %v", entries)
			}
			if fileSHA(t, raw) != sum {
				t.Fatal("failed NewOverlay changed the base")
			}
		})
	}
}

func TestOverlayDiscard(t *testing.T) {
	for _, format := range baseFormats {
		t.Run(format, func(t *testing.T) {
			requireTool(t, "qemu-io")
			base := makeBase(t, t.TempDir(), "disk."+format, format)
			sum := fileSHA(t, base)
			ov := newOverlay(t, t.TempDir(), base, format)
			qemuIOWrite(t, ov.Path, "qcow2", ovPat, "0", "64k")
			checkBaseData(t, "overlay", virtualBytes(t, ov.Path, "qcow2"), true)

			if err := ov.Discard(); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(ov.Path); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("overlay still there: %v", err)
			}
			if fileSHA(t, base) != sum {
				t.Fatal("base changed after Discard")
			}
			checkBaseData(t, "base", virtualBytes(t, base, format), false)
			if err := ov.Discard(); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("second Discard = %v, want ErrNotExist", err)
			}
		})
	}
}

func TestOverlayCommit(t *testing.T) {
	for _, format := range baseFormats {
		t.Run(format, func(t *testing.T) {
			requireTool(t, "qemu-io")
			base := makeBase(t, t.TempDir(), "disk."+format, format)
			fi0, _ := os.Stat(base)
			ov := newOverlay(t, t.TempDir(), base, format)
			qemuIOWrite(t, ov.Path, "qcow2", ovPat, "0", "64k")

			if err := ov.Commit(context.Background()); err != nil {
				t.Fatal(err)
			}
			b := virtualBytes(t, base, format)
			checkBaseData(t, "committed base", b, true)
			if format == "raw" {
				fi1, _ := os.Stat(base)
				if fi1.Size() != fi0.Size() {
					t.Fatalf("raw base size %d -> %d", fi0.Size(), fi1.Size())
				}
			} else if h, err := Probe(base); err != nil || h.BackingFile != "" || h.Size != baseSize {
				t.Fatalf("committed qcow2 base header %+v, %v", h, err)
			}
			// "-d": the overlay is kept and still reads the same data.
			run(t, "qemu-img", "compare", "-f", "qcow2", "-F", format, ov.Path, base)
			if err := ov.Discard(); err != nil {
				t.Fatal(err)
			}
			checkBaseData(t, "base after discard", virtualBytes(t, base, format), true)
		})
	}
}

func TestOverlayExport(t *testing.T) {
	requireTool(t, "qemu-io")
	for _, inFormat := range baseFormats {
		for _, outFormat := range baseFormats {
			t.Run(inFormat+" to "+outFormat, func(t *testing.T) {
				base := makeBase(t, t.TempDir(), "disk."+inFormat, inFormat)
				sum := fileSHA(t, base)
				ov := newOverlay(t, t.TempDir(), base, inFormat)
				qemuIOWrite(t, ov.Path, "qcow2", ovPat, "0", "64k")

				outDir := t.TempDir()
				dest := filepath.Join(outDir, "out."+outFormat)
				if err := ov.Export(context.Background(), dest, Output{Format: outFormat}); err != nil {
					t.Fatal(err)
				}
				h, err := Probe(dest)
				if err != nil {
					t.Fatal(err)
				}
				if h.Format != outFormat || h.BackingFile != "" || h.Size != baseSize {
					t.Fatalf("exported header %+v: want standalone %s of %d bytes", h, outFormat, baseSize)
				}
				checkBaseData(t, "export", virtualBytes(t, dest, outFormat), true)
				if fileSHA(t, base) != sum {
					t.Fatal("Export changed the base")
				}
				checkBaseData(t, "overlay after export", virtualBytes(t, ov.Path, "qcow2"), true)
				if entries, _ := os.ReadDir(outDir); len(entries) != 1 {
					t.Fatalf("export dir holds %v", entries)
				}
				// The export stands alone: it survives losing base and overlay.
				if err := ov.Discard(); err != nil {
					t.Fatal(err)
				}
				if err := os.Remove(base); err != nil {
					t.Fatal(err)
				}
				checkBaseData(t, "export without base", virtualBytes(t, dest, outFormat), true)
			})
		}
	}
}

func TestOverlayExportReplacesAndFails(t *testing.T) {
	requireTool(t, "qemu-io")
	base := makeBase(t, t.TempDir(), "disk.raw", "raw")
	ov := newOverlay(t, t.TempDir(), base, "raw")
	qemuIOWrite(t, ov.Path, "qcow2", ovPat, "0", "64k")
	outDir := t.TempDir()

	t.Run("replaces an existing file", func(t *testing.T) {
		dest := writeFile(t, filepath.Join(outDir, "exists.img"), []byte("old contents"))
		if err := ov.Export(context.Background(), dest, Output{Format: "raw"}); err != nil {
			t.Fatal(err)
		}
		checkBaseData(t, "replaced export", virtualBytes(t, dest, "raw"), true)
	})
	t.Run("bad format leaves nothing", func(t *testing.T) {
		dest := filepath.Join(outDir, "bad.img")
		err := ov.Export(context.Background(), dest, Output{Format: "qcow2", Options: "cluster_size=7"})
		if !errors.Is(err, ErrQemuImg) {
			t.Fatalf("Export(bad format) = %v, want ErrQemuImg", err)
		}
		for _, p := range []string{dest, dest + ".imgbake-partial"} {
			if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("%s left behind: %v", p, err)
			}
		}
	})
	t.Run("failure keeps the old destination", func(t *testing.T) {
		dest := writeFile(t, filepath.Join(outDir, "keep.img"), []byte("old contents"))
		if err := ov.Export(context.Background(), dest, Output{Format: "qcow2", Options: "cluster_size=7"}); err == nil {
			t.Fatal("Export succeeded")
		}
		if b, _ := os.ReadFile(dest); string(b) != "old contents" {
			t.Fatalf("destination clobbered: %q", b)
		}
	})
	t.Run("missing destination dir", func(t *testing.T) {
		err := ov.Export(context.Background(), filepath.Join(outDir, "no", "such", "out.raw"), Output{Format: "raw"})
		if !errors.Is(err, ErrQemuImg) {
			t.Fatalf("Export = %v, want ErrQemuImg", err)
		}
	})
	t.Run("cancelled context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		dest := filepath.Join(outDir, "cancelled.raw")
		if err := ov.Export(ctx, dest, Output{Format: "raw"}); err == nil {
			t.Fatal("Export with a cancelled context succeeded")
		}
		if _, err := os.Stat(dest); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("cancelled export left %s", dest)
		}
	})
}

func TestOverlaysSameBaseName(t *testing.T) {
	requireTool(t, "qemu-io")
	runDir := t.TempDir()
	baseA := makeBase(t, t.TempDir(), "disk.img", "raw")
	baseB := makeBase(t, t.TempDir(), "disk.img", "qcow2")
	sumA, sumB := fileSHA(t, baseA), fileSHA(t, baseB)

	ovA := newOverlay(t, runDir, baseA, "raw")
	ovB := newOverlay(t, runDir, baseB, "qcow2")
	ovA2 := newOverlay(t, runDir, baseA, "raw") // the same base twice
	paths := map[string]bool{ovA.Path: true, ovB.Path: true, ovA2.Path: true}
	if len(paths) != 3 {
		t.Fatalf("overlay paths collide: %s %s %s", ovA.Path, ovB.Path, ovA2.Path)
	}
	for _, ov := range []*Overlay{ovA, ovB, ovA2} {
		h, err := Probe(ov.Path)
		if err != nil || h.BackingFile != ov.Base || h.BackingFormat != ov.BaseFormat {
			t.Fatalf("Probe(%s) = %+v, %v; want backing %s (%s)", ov.Path, h, err, ov.Base, ov.BaseFormat)
		}
	}

	qemuIOWrite(t, ovA.Path, "qcow2", 0xaa, "0", "64k")
	qemuIOWrite(t, ovB.Path, "qcow2", 0xbb, "0", "64k")
	qemuIOWrite(t, ovA2.Path, "qcow2", 0xcc, "0", "64k")
	for ov, pat := range map[*Overlay]byte{ovA: 0xaa, ovB: 0xbb, ovA2: 0xcc} {
		b := virtualBytes(t, ov.Path, "qcow2")
		checkRun(t, ov.Path, b, 0, k64, pat)
		checkRun(t, ov.Path, b, mib, k64, basePat)
	}

	// Committing one leaves the other overlays and base alone.
	if err := ovB.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	if fileSHA(t, baseA) != sumA {
		t.Fatal("committing B changed base A")
	}
	if fileSHA(t, baseB) == sumB {
		t.Fatal("committing B did not change base B")
	}
	checkRun(t, "base B", virtualBytes(t, baseB, "qcow2"), 0, k64, 0xbb)
	for _, ov := range []*Overlay{ovA, ovB, ovA2} {
		if err := ov.Discard(); err != nil {
			t.Fatal(err)
		}
	}
	if fileSHA(t, baseA) != sumA {
		t.Fatal("discarding changed base A")
	}
	if entries, _ := os.ReadDir(runDir); len(entries) != 0 {
		t.Fatalf("run dir not empty: %v", entries)
	}
}

func TestQemuImgMissing(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	base := writeFile(t, filepath.Join(t.TempDir(), "disk.raw"), make([]byte, mib))
	dir := t.TempDir()
	_, err := NewOverlay(context.Background(), dir, base, "raw")
	if err == nil || !strings.Contains(err.Error(), "install qemu-utils") || !errors.Is(err, exec.ErrNotFound) {
		t.Fatalf("NewOverlay without qemu-img = %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("left %v", entries)
	}
	ov := &Overlay{Path: filepath.Join(dir, "x.qcow2"), Base: base, BaseFormat: "raw"}
	if err := ov.Commit(context.Background()); err == nil {
		t.Fatal("Commit without qemu-img succeeded")
	}
	if err := ov.Export(context.Background(), filepath.Join(dir, "out"), Output{Format: "raw"}); err == nil {
		t.Fatal("Export without qemu-img succeeded")
	}
	if !bytes.Equal(mustRead(t, base), make([]byte, mib)) {
		t.Fatal("base changed")
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
