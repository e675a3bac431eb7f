package testimages

import (
	"crypto/aes"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/xts"
)

// DecryptPayload decrypts the LUKS payload of a raw image made from a LUKS
// test image (Info.PayloadOffset, Info.PayloadSize) with the volume key
// cryptsetup reported at build time (Info.VolumeKey): aes-xts-plain64,
// Info.SectorSize sectors whose IV is their offset from the payload's
// start in 512-byte units, as dm-crypt maps a LUKS volume for cryptsetup.
// It shares no code with imgbake. The plaintext is written to a file in
// t.TempDir() whose path is returned; read it with ReadFileAt.
func DecryptPayload(t testing.TB, imagePath string, info Info) string {
	t.Helper()
	key, err := hex.DecodeString(info.VolumeKey)
	if err != nil || info.PayloadSize <= 0 {
		t.Fatalf("testimages: %s has no LUKS volume key or payload (%v)", info.Name, err)
	}
	c, err := xts.NewCipher(aes.NewCipher, key)
	if err != nil {
		t.Fatalf("testimages: %v", err)
	}
	in, err := os.Open(imagePath)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	outPath := filepath.Join(t.TempDir(), "plaintext")
	out, err := os.Create(outPath)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	sector := int64(512)
	if info.SectorSize != 0 {
		sector = info.SectorSize
	}
	buf := make([]byte, 4<<20)
	zero := make([]byte, len(buf))
	for p := int64(0); p < info.PayloadSize; {
		n := min(int64(len(buf)), info.PayloadSize-p)
		if _, err := in.ReadAt(buf[:n], info.PayloadOffset+p); err != nil {
			t.Fatalf("testimages: reading the payload: %v", err)
		}
		// Never-written regions (holes) hold no data: keep them holes.
		if string(buf[:n]) != string(zero[:n]) {
			for s := int64(0); s < n; s += sector {
				c.Decrypt(buf[s:s+sector], buf[s:s+sector], uint64((p+s)/512))
			}
			if _, err := out.WriteAt(buf[:n], p); err != nil {
				t.Fatal(err)
			}
		}
		p += n
	}
	if err := out.Truncate(info.PayloadSize); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(fmt.Errorf("testimages: %w", err))
	}
	return outPath
}
