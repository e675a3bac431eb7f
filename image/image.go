// Package image owns the disk files: format detection without trusting the
// file, the private qcow2 overlay a run writes to, committing or discarding
// it, and the lock that keeps two runs off one image.
package image

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// Sentinel errors let the CLI map failures to exit codes.
var (
	ErrNotFound    = errors.New("disk image not found")
	ErrFormat      = errors.New("unsupported or wrong disk format")
	ErrBackingFile = errors.New("qcow2 image names a backing file")
	ErrLocked      = errors.New("disk image is in use")
)

// Formats are the disk formats imgbake attaches.
var Formats = []string{"raw", "qcow2"}

var qcow2Magic = []byte{'Q', 'F', 'I', 0xfb}

// Header is what imgbake reads from an image before handing it to QEMU.
type Header struct {
	Format        string // "qcow2" or "raw"
	Version       uint32 // qcow2 version
	BackingFile   string // qcow2 backing file name, if any
	BackingFormat string // the backing file's format as recorded in the header, if any
	DataFile      bool   // qcow2 v3 "external data file" feature: guest data lives in a host file the header names
	Size          int64  // virtual size
}

// Probe reads the first bytes of path. It only looks; QEMU is always told
// the format explicitly so it never probes a guest-controlled header.
func Probe(path string) (Header, error) {
	// O_NONBLOCK: opening a FIFO must not hang; it is refused below.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return Header{}, fmt.Errorf("%w: %s", ErrNotFound, path)
		}
		return Header{}, fmt.Errorf("opening disk image %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Header{}, err
	}
	if !fi.Mode().IsRegular() && (fi.Mode()&os.ModeDevice == 0 || fi.Mode()&os.ModeCharDevice != 0) {
		return Header{}, fmt.Errorf("%w: %s is not a regular file or block device", ErrFormat, path)
	}
	buf := make([]byte, 104)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return Header{}, fmt.Errorf("reading disk image %s: %w", path, err)
	}
	buf = buf[:n]
	h := Header{Format: "raw", Size: fi.Size()}
	if n >= 4 && string(buf[:4]) == string(qcow2Magic) {
		h.Format = "qcow2"
		if n < 8 {
			return h, fmt.Errorf("%w: %s: truncated qcow2 header", ErrFormat, path)
		}
		h.Version = binary.BigEndian.Uint32(buf[4:8])
		// QEMU needs 72 header bytes for v2 and 104 for v3.
		need := 72
		if h.Version >= 3 {
			need = 104
		}
		if n < need {
			return h, fmt.Errorf("%w: %s: truncated qcow2 header (%d of %d bytes)", ErrFormat, path, n, need)
		}
		// Incompatible feature bit 2: external data file.
		h.DataFile = h.Version >= 3 && binary.BigEndian.Uint64(buf[72:80])&4 != 0
		boff := binary.BigEndian.Uint64(buf[8:16])
		blen := binary.BigEndian.Uint32(buf[16:20])
		h.Size = int64(binary.BigEndian.Uint64(buf[24:32]))
		if boff != 0 && blen > 0 {
			if blen > 1023 {
				return h, fmt.Errorf("%w: %s: backing file name of %d bytes", ErrFormat, path, blen)
			}
			name := make([]byte, blen)
			if _, err := f.ReadAt(name, int64(boff)); err != nil {
				return h, fmt.Errorf("%w: %s: unreadable backing file name", ErrFormat, path)
			}
			h.BackingFile = string(name)
			h.BackingFormat = backingFormat(f, h.Version, buf)
		}
	}
	return h, nil
}

// backingFormat reads the qcow2 "backing file format name" header
// extension (type 0xe2792aca). "" means the image does not record one and
// QEMU would have to probe the backing file.
func backingFormat(f *os.File, version uint32, hdr []byte) string {
	off := int64(72)
	if version >= 3 {
		ext := make([]byte, 4)
		if _, err := f.ReadAt(ext, 100); err != nil {
			return ""
		}
		off = int64(binary.BigEndian.Uint32(ext))
	}
	for i := 0; i < 64 && off < 1<<20; i++ {
		var eh [8]byte
		if _, err := f.ReadAt(eh[:], off); err != nil {
			return ""
		}
		typ, n := binary.BigEndian.Uint32(eh[:4]), binary.BigEndian.Uint32(eh[4:])
		if typ == 0 || n > 4096 {
			return ""
		}
		if typ == 0xe2792aca {
			name := make([]byte, n)
			if _, err := f.ReadAt(name, off+8); err != nil {
				return ""
			}
			return string(name)
		}
		off += 8 + int64((n+7)&^7)
	}
	return ""
}

// Resolve decides the format to attach path with. explicit is the user's
// --format ("" = detect). A qcow2 image with a backing file is refused
// unless the user said --format qcow2 or allowBacking: following a backing file named inside an untrusted
// image can expose any host file. Even then the backing format must be
// recorded in the image, so QEMU never probes it.
func Resolve(path, explicit string, allowBacking bool) (Header, error) {
	if explicit != "" && explicit != "raw" && explicit != "qcow2" {
		return Header{}, fmt.Errorf("%w: --format %q (use raw or qcow2)", ErrFormat, explicit)
	}
	h, err := Probe(path)
	// --format raw ignores the qcow2 header, so a malformed one is no error.
	if err != nil && (explicit != "raw" || h.Format != "qcow2") {
		return h, err
	}
	switch explicit {
	case "raw":
		h = Header{Format: "raw", Size: h.Size}
		if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() {
			h.Size = fi.Size()
		}
		return h, nil
	case "qcow2":
		if h.Format != "qcow2" {
			return h, fmt.Errorf("%w: %s is not a qcow2 image (it has no qcow2 header); use --format raw", ErrFormat, path)
		}
	}
	if h.DataFile {
		return h, fmt.Errorf("%w: %s keeps its data in an external data file named in its header; convert it to a standalone image with: qemu-img convert -O qcow2 %s new.qcow2", ErrFormat, path, path)
	}
	if h.BackingFile == "" {
		return h, nil
	}
	if !allowBacking && explicit != "qcow2" {
		return h, fmt.Errorf("%w: %s uses backing file %q; pass --format qcow2 or --allow-backing if you trust it", ErrBackingFile, path, h.BackingFile)
	}
	if h.BackingFormat != "raw" && h.BackingFormat != "qcow2" {
		return h, fmt.Errorf("%w: %s does not record its backing file's format (found %q); set it with: qemu-img rebase -u -F raw|qcow2 -b %q %s",
			ErrBackingFile, path, h.BackingFormat, h.BackingFile, path)
	}
	return h, nil
}
