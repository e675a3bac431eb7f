package luks

import (
	"bytes"
	"os"
	"testing"
)

// FuzzRead feeds arbitrary bytes to the header parsers: they must return
// an error or a header whose sizes are within bounds, never panic or
// allocate without bound. Seeds are headers made by cryptsetup (testdata,
// headers and metadata only, no keyslot areas).
func FuzzRead(f *testing.F) {
	for _, name := range []string{"testdata/luks1-header.bin", "testdata/luks2-headers.bin"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("LUKS\xba\xbe\x00\x02"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		h, err := Read(r)
		if err != nil {
			return
		}
		if h.KeySize <= 0 || h.KeySize > maxKeySize {
			t.Fatalf("key size %d accepted", h.KeySize)
		}
		_ = h.DMTable(make([]byte, h.KeySize), "8:1")
		// What a header's material holds is enough to read it again, and
		// stays within bounds.
		if ext, err := h.Material(); err == nil {
			var mat []byte
			var total int64
			for _, e := range ext {
				total += e.Size
				if total > MaxMaterial {
					t.Fatalf("material of %d bytes accepted", total)
				}
				b := make([]byte, e.Size)
				n, _ := r.ReadAt(b, e.Offset)
				mat = append(mat, b[:n]...)
				if n < len(b) {
					mat = nil
					break
				}
			}
			if mat != nil {
				sp, err := NewSparse(ext, mat)
				if err != nil {
					t.Fatalf("NewSparse of the material: %v", err)
				}
				h2, err := Read(sp)
				if err != nil || h2.UUID != h.UUID || len(h2.Keyslots) != len(h.Keyslots) {
					t.Fatalf("header read from its material: %v", err)
				}
			}
		}
		for i := range h.Keyslots {
			ks := &h.Keyslots[i]
			costly := ks.KDF.Iterations > 100 || ks.KDF.Type != "pbkdf2" && (ks.KDF.Iterations > 4 || ks.KDF.MemoryKiB > 64)
			if ks.Size > 1<<24 || costly || h.digest.iterations > 100 {
				continue // too costly for a fuzz iteration; bounds were checked by Read
			}
			_, _ = h.UnlockSlot(r, ks, []byte("x"), 1024)
		}
	})
}

func TestFixtureHeaders(t *testing.T) {
	for name, want := range map[string]string{
		"testdata/luks1-header.bin":  "11111111-2222-3333-4444-555555555555",
		"testdata/luks2-headers.bin": "66666666-7777-8888-9999-aaaaaaaaaaaa",
	} {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		h, err := Read(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if h.UUID != want || UUIDOf(b) != want || len(h.Keyslots) != 1 {
			t.Errorf("%s: UUID %q / %q, %d keyslots", name, h.UUID, UUIDOf(b), len(h.Keyslots))
		}
	}
}

// FuzzSparse: the extents and data of a header come from the agent, which
// reads a hostile image. NewSparse accepts only ordered, disjoint extents
// that add up to the data, and a Sparse never reads outside what it holds.
func FuzzSparse(f *testing.F) {
	f.Add(int64(0), int64(4096), int64(8192), int64(512), 4608)
	f.Add(int64(10), int64(4), int64(12), int64(6), 10)
	f.Add(int64(-1), int64(1), int64(0), int64(0), 1)
	f.Fuzz(func(t *testing.T, off1, size1, off2, size2 int64, n int) {
		if n < 0 || n > 1<<16 {
			return
		}
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(i)
		}
		ext := []Extent{{Offset: off1, Size: size1}, {Offset: off2, Size: size2}}
		sp, err := NewSparse(ext, data)
		if err != nil {
			return
		}
		if size1+size2 != int64(n) || off2 < off1+size1 || off1 < 0 {
			t.Fatalf("NewSparse(%+v, %d bytes) accepted", ext, n)
		}
		b := make([]byte, 3)
		for _, at := range []int64{off1, off1 + size1 - 1, off2, off2 + size2 - 3, off1 - 1, off2 + size2} {
			k, err := sp.ReadAt(b, at)
			if k > len(b) || (err == nil && k != len(b)) {
				t.Fatalf("ReadAt(%d) = %d, %v", at, k, err)
			}
		}
	})
}
