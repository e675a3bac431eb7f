// Command xtsencrypt writes a plaintext file, encrypted as dm-crypt's
// aes-xts-plain64 does it, into a LUKS partition's payload, so test images
// with LUKS volumes can be made on a host without device-mapper. The IV of
// each encryption sector (512 bytes, or -sector-size) is its offset from
// the start of the payload in 512-byte units, little-endian (plain64), as
// cryptsetup maps LUKS2 volumes (without iv_large_sectors). It shares no code with imgbake's LUKS
// reader: the appliance kernel's dm-crypt decrypting the result is the
// check of both.
//
// Usage:
//
//	xtsencrypt -key HEX -in PLAIN -out DISK -offset BYTES [-sector-size 4096]
//
// Only the data regions of a sparse PLAIN are written (SEEK_DATA): its
// holes stay holes in DISK, as never-written sectors of a real volume,
// which the filesystem inside does not read. (testimages.DecryptPayload
// is the way back, for tests.)
package main

import (
	"crypto/aes"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"golang.org/x/crypto/xts"
	"golang.org/x/sys/unix"
)

func main() {
	keyHex := flag.String("key", "", "volume key, hex (64 bytes for AES-256-XTS, 32 for AES-128-XTS)")
	in := flag.String("in", "", "input file")
	out := flag.String("out", "", "output file (written in place, not truncated)")
	offset := flag.Int64("offset", 0, "byte offset of the payload in the disk")
	sectorSize := flag.Int64("sector-size", 512, "encryption sector size: 512, 1024, 2048 or 4096")
	flag.Parse()
	key, err := hex.DecodeString(*keyHex)
	sector = *sectorSize
	if err == nil && (*in == "" || *out == "" || sector < 512 || sector > 4096 || sector&(sector-1) != 0 || *offset%sector != 0) {
		err = errors.New("usage: xtsencrypt -key HEX -in PLAIN -out DISK -offset BYTES [-sector-size 512|1024|2048|4096]")
	}
	if err == nil {
		err = encrypt(key, *in, *out, *offset)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "xtsencrypt:", err)
		os.Exit(1)
	}
}

// sector is the encryption sector size.
var sector int64 = 512

func encrypt(key []byte, inPath, outPath string, offset int64) error {
	c, err := xts.NewCipher(aes.NewCipher, key)
	if err != nil {
		return err
	}
	in, err := os.Open(inPath)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(outPath, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	st, err := in.Stat()
	if err != nil {
		return err
	}
	if st.Size()%sector != 0 {
		return fmt.Errorf("%s: size %d is not a multiple of %d", inPath, st.Size(), sector)
	}
	buf := make([]byte, 1<<20)
	for pos := int64(0); pos < st.Size(); {
		data, err := unix.Seek(int(in.Fd()), pos, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole is left
		} else if err != nil {
			return err
		}
		hole, err := unix.Seek(int(in.Fd()), data, unix.SEEK_HOLE)
		if err != nil {
			return err
		}
		data -= data % sector
		hole = min((hole+sector-1)/sector*sector, st.Size())
		for p := data; p < hole; {
			n := min(int64(len(buf)), hole-p)
			if _, err := in.ReadAt(buf[:n], p); err != nil && !errors.Is(err, io.EOF) {
				return err
			}
			for s := int64(0); s < n; s += sector {
				c.Encrypt(buf[s:s+sector], buf[s:s+sector], uint64((p+s)/512))
			}
			if _, err := out.WriteAt(buf[:n], offset+p); err != nil {
				return err
			}
			p += n
		}
		pos = hole
	}
	if err := out.Sync(); err != nil {
		return err
	}
	return out.Close()
}
