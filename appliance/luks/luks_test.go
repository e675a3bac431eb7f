package luks

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const testPass = "luks test passphrase"

// format makes a LUKS volume of 2 MiB with the host's cryptsetup, which
// shares no code with this package, and returns it with the volume key
// cryptsetup reports for it.
func format(t *testing.T, args ...string) (string, []byte) {
	t.Helper()
	if _, err := exec.LookPath("cryptsetup"); err != nil {
		t.Skip("cryptsetup not installed (apt-get install cryptsetup-bin)")
	}
	dir := t.TempDir()
	img, pw := filepath.Join(dir, "vol"), filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte(testPass), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(img, make([]byte, 2<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	full := append([]string{"luksFormat", "-q", "--key-file", pw}, args...)
	if out, err := exec.Command("cryptsetup", append(full, img)...).CombinedOutput(); err != nil {
		t.Fatalf("cryptsetup %v: %v\n%s", full, err, out)
	}
	out, err := exec.Command("cryptsetup", "luksDump", "-q", "--dump-volume-key", "--key-file", pw, img).CombinedOutput()
	if err != nil {
		t.Fatalf("cryptsetup luksDump: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`(?s)MK dump:\s*((?:[0-9a-f]{2}\s+)+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no volume key in luksDump output:\n%s", out)
	}
	key, err := hex.DecodeString(strings.Join(strings.Fields(string(m[1])), ""))
	if err != nil {
		t.Fatal(err)
	}
	return img, key
}

func luksUUID(t *testing.T, img string) string {
	out, err := exec.Command("cryptsetup", "luksUUID", img).Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

func TestUnlockMatchesCryptsetup(t *testing.T) {
	small := []string{"--luks2-metadata-size", "16k", "--luks2-keyslots-size", "512k"}
	for _, tc := range []struct {
		name    string
		args    []string
		version int
		cipher  string
		sector  int
	}{
		{"luks1-xts-sha256", []string{"--type", "luks1", "--pbkdf-force-iterations", "1000"}, 1, "aes-xts-plain64", 512},
		{"luks1-cbc-essiv-sha1", []string{"--type", "luks1", "--pbkdf-force-iterations", "1000", "-c", "aes-cbc-essiv:sha256", "-s", "256", "--hash", "sha1"}, 1, "aes-cbc-essiv:sha256", 512},
		{"luks1-sha512", []string{"--type", "luks1", "--pbkdf-force-iterations", "1000", "--hash", "sha512"}, 1, "aes-xts-plain64", 512},
		{"luks2-pbkdf2", append([]string{"--type", "luks2", "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", "--sector-size", "512"}, small...), 2, "aes-xts-plain64", 512},
		{"luks2-argon2id-4k", append([]string{"--type", "luks2", "--pbkdf", "argon2id", "--pbkdf-memory", "32", "--pbkdf-force-iterations", "4", "--pbkdf-parallel", "1", "--sector-size", "4096"}, small...), 2, "aes-xts-plain64", 4096},
		{"luks2-argon2i-xts256", append([]string{"--type", "luks2", "--pbkdf", "argon2i", "--pbkdf-memory", "32", "--pbkdf-force-iterations", "4", "--pbkdf-parallel", "2", "-s", "256"}, small...), 2, "aes-xts-plain64", 4096},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img, want := format(t, tc.args...)
			f, err := os.Open(img)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			h, err := Read(f)
			if err != nil {
				t.Fatal(err)
			}
			if h.Version != tc.version || h.Cipher != tc.cipher || h.PayloadSectorSize != tc.sector || h.KeySize != len(want) {
				t.Errorf("header: version %d cipher %s sector %d key %d; want %d %s %d %d", h.Version, h.Cipher, h.PayloadSectorSize, h.KeySize, tc.version, tc.cipher, tc.sector, len(want))
			}
			if u := luksUUID(t, img); h.UUID != u {
				t.Errorf("UUID %q, cryptsetup says %q", h.UUID, u)
			}
			key, err := h.Unlock(f, []byte(testPass), 0)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(key, want) {
				t.Errorf("volume key %x, cryptsetup says %x", key, want)
			}
			if _, err := h.Unlock(f, []byte(testPass+"x"), 0); !errors.Is(err, ErrWrongKey) {
				t.Errorf("wrong passphrase: %v, want ErrWrongKey", err)
			}
			// What the agent sends the host is enough to unlock.
			sp := materialOf(t, h, f)
			hh, err := Read(sp)
			if err != nil {
				t.Fatalf("reading the header from its material: %v", err)
			}
			key2, slot, err := hh.UnlockWithSlot(sp, []byte(testPass), 0)
			if err != nil || !bytes.Equal(key2, want) || slot.ID != "0" {
				t.Errorf("unlock from the material: key %x slot %+v, %v; want %x", key2, slot, err, want)
			}
			if err := h.CheckKey(want); err != nil {
				t.Errorf("CheckKey(the volume key): %v", err)
			}
			bad := bytes.Clone(want)
			bad[0] ^= 1
			if err := h.CheckKey(bad); err == nil {
				t.Error("CheckKey accepts a wrong volume key")
			}
			if err := h.CheckKey(want[:len(want)-1]); err == nil {
				t.Error("CheckKey accepts a short volume key")
			}
		})
	}
}

// A second keyslot opens with its own passphrase; a damaged primary
// LUKS2 header falls back to the secondary copy.
func TestSecondKeyslotAndSecondaryHeader(t *testing.T) {
	img, want := format(t, "--type", "luks2", "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000",
		"--luks2-metadata-size", "16k", "--luks2-keyslots-size", "1m")
	dir := filepath.Dir(img)
	pw2 := filepath.Join(dir, "pw2")
	if err := os.WriteFile(pw2, []byte("second"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("cryptsetup", "luksAddKey", "-q", "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000",
		"--key-file", filepath.Join(dir, "pw"), img, pw2)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("luksAddKey: %v\n%s", err, out)
	}
	data, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	data[4096+10] ^= 0xff // in the primary's JSON area: its checksum fails
	h, err := Read(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Keyslots) != 2 {
		t.Fatalf("%d keyslots, want 2", len(h.Keyslots))
	}
	key, err := h.Unlock(bytes.NewReader(data), []byte("second"), 0)
	if err != nil || !bytes.Equal(key, want) {
		t.Fatalf("second passphrase: key %x, %v; want %x", key, err, want)
	}
	// The material of a header whose primary copy is damaged still opens.
	sp := materialOf(t, h, bytes.NewReader(data))
	hh, err := Read(sp)
	if err != nil {
		t.Fatalf("material with a damaged primary: %v", err)
	}
	if key, err := hh.Unlock(sp, []byte("second"), 0); err != nil || !bytes.Equal(key, want) {
		t.Fatalf("material with a damaged primary, second passphrase: key %x, %v; want %x", key, err, want)
	}
	data[16384+10] ^= 0xff // and now the secondary too
	if _, err := Read(bytes.NewReader(data)); err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Errorf("both copies damaged: %v, want a checksum error", err)
	}
}

func TestArgon2MemoryLimit(t *testing.T) {
	img, _ := format(t, "--type", "luks2", "--pbkdf", "argon2id", "--pbkdf-memory", "2048", "--pbkdf-force-iterations", "4", "--pbkdf-parallel", "1",
		"--luks2-metadata-size", "16k", "--luks2-keyslots-size", "512k")
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, err := Read(f)
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.Unlock(f, []byte(testPass), 1024)
	if err == nil || errors.Is(err, ErrWrongKey) || !strings.Contains(err.Error(), "needs 2 MiB of memory, only 1 MiB") {
		t.Errorf("unlock over the memory limit: %v, want a message naming the memory needed", err)
	}
}

func TestNotLUKS(t *testing.T) {
	if _, err := Read(bytes.NewReader(make([]byte, 8192))); !errors.Is(err, ErrNotLUKS) {
		t.Errorf("zeros: %v", err)
	}
	if _, err := Read(bytes.NewReader(nil)); !errors.Is(err, ErrNotLUKS) {
		t.Errorf("empty: %v", err)
	}
}

// TestAFMergeVector checks the splitter against a split made by hand from
// the LUKS spec's definition: stripes s1..s(n-1) random, sn = d(n-1) ^ key.
func TestAFMergeVector(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef0123456789") // 42 bytes: a partial last hash block
	const stripes = 3
	split := make([]byte, len(key)*stripes)
	for i := range split {
		split[i] = byte(i*7 + 3)
	}
	d := make([]byte, len(key))
	for i := 0; i < stripes-1; i++ {
		for j := range d {
			d[j] ^= split[i*len(key)+j]
		}
		// diffuse by hand: sha256 of be32(index) || block, per 32-byte block
		var out []byte
		for b, off := 0, 0; off < len(d); b, off = b+1, off+32 {
			end := min(off+32, len(d))
			s := sha256.Sum256(append([]byte{0, 0, 0, byte(b)}, d[off:end]...))
			out = append(out, s[:end-off]...)
		}
		d = out
	}
	for j := range key {
		split[(stripes-1)*len(key)+j] = d[j] ^ key[j]
	}
	got, err := afMerge(split, len(key), stripes, "sha256")
	if err != nil || !bytes.Equal(got, key) {
		t.Errorf("afMerge = %q, %v; want %q", got, err, key)
	}
}

func TestDMTable(t *testing.T) {
	h := &Header{Cipher: "aes-xts-plain64", PayloadOffset: 16 << 20, PayloadSectorSize: 512}
	if got := string(h.DMTable([]byte{0xab, 0x01}, "253:0")); got != "aes-xts-plain64 ab01 0 253:0 32768" {
		t.Errorf("table %q", got)
	}
	h.PayloadSectorSize = 4096
	if got := string(h.DMTable([]byte{0xab}, "8:3")); got != "aes-xts-plain64 ab 0 8:3 32768 1 sector_size:4096" {
		t.Errorf("table %q", got)
	}
}

// materialOf reads the Material of h from r, as the agent does, and
// returns it as the host sees it.
func materialOf(t *testing.T, h *Header, r io.ReaderAt) *Sparse {
	t.Helper()
	material, ext, err := h.MaterialReader(r)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(material)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) > 1<<20 {
		t.Errorf("material of %d bytes for one small volume", len(data))
	}
	sp, err := NewSparse(ext, data)
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

func TestSparse(t *testing.T) {
	data := []byte("aaaabbbbbb")
	sp, err := NewSparse([]Extent{{Offset: 10, Size: 4}, {Offset: 100, Size: 6}}, data)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 3)
	if n, err := sp.ReadAt(b, 101); err != nil || n != 3 || string(b) != "bbb" {
		t.Errorf("ReadAt(101) = %d %q, %v", n, b, err)
	}
	for _, off := range []int64{0, 12, 14, 104, 200} {
		if _, err := sp.ReadAt(b, off); err == nil {
			t.Errorf("ReadAt(%d) outside the ranges succeeded", off)
		}
	}
	for _, bad := range [][]Extent{
		{{Offset: 10, Size: 4}},                         // data left over
		{{Offset: 10, Size: 4}, {Offset: 12, Size: 6}},  // overlapping
		{{Offset: 10, Size: 4}, {Offset: 100, Size: 7}}, // more than the data
		{{Offset: -1, Size: 4}, {Offset: 100, Size: 6}},
		{{Offset: 10, Size: 0}, {Offset: 100, Size: 10}},
	} {
		if _, err := NewSparse(bad, data); err == nil {
			t.Errorf("NewSparse(%+v) accepted", bad)
		}
	}
	sp.Wipe()
	if !bytes.Equal(data, make([]byte, len(data))) {
		t.Errorf("Wipe left %q", data)
	}
}
