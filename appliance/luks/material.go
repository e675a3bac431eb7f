package luks

import (
	"errors"
	"fmt"
	"io"
	"slices"
)

// MaxMaterial bounds what Material may return: the header copies (at most
// 2 × 4 MiB) and the active keyslots' areas (cryptsetup's are 256 KiB each
// for a 512-bit key; the format allows a few MiB).
const MaxMaterial = 24 << 20

// Extent is a byte range of the device.
type Extent struct {
	Offset int64 `json:"offset"`
	Size   int64 `json:"size"`
}

// MaterialReader reads h's Material from dev (where h was read), in order:
// what the agent sends the host, and what NewSparse takes.
func (h *Header) MaterialReader(dev io.ReaderAt) (io.Reader, []Extent, error) {
	ext, err := h.Material()
	if err != nil {
		return nil, nil, err
	}
	parts := make([]io.Reader, len(ext))
	for i, e := range ext {
		parts[i] = io.NewSectionReader(dev, e.Offset, e.Size)
	}
	return io.MultiReader(parts...), ext, nil
}

// Material lists the byte ranges of the device that Read and Unlock need:
// the header copies and the areas of the active keyslots, merged and in
// order. Whoever holds these bytes can recover the volume key from a
// passphrase without the rest of the device (the host does, so the KDF
// runs on its CPUs and memory, not the appliance's).
func (h *Header) Material() ([]Extent, error) {
	ext := slices.Clone(h.spans)
	for _, ks := range h.Keyslots {
		ext = append(ext, Extent{Offset: ks.Offset, Size: ks.Size})
	}
	slices.SortFunc(ext, func(a, b Extent) int {
		switch {
		case a.Offset < b.Offset:
			return -1
		case a.Offset > b.Offset:
			return 1
		}
		return 0
	})
	var out []Extent
	var total int64
	for _, e := range ext {
		if e.Offset < 0 || e.Size <= 0 || e.Size > MaxMaterial {
			return nil, fmt.Errorf("header range at %d of %d bytes out of bounds", e.Offset, e.Size)
		}
		if n := len(out); n > 0 && e.Offset <= out[n-1].Offset+out[n-1].Size {
			last := &out[n-1]
			end := max(last.Offset+last.Size, e.Offset+e.Size)
			total += end - (last.Offset + last.Size)
			last.Size = end - last.Offset
		} else {
			out = append(out, e)
			total += e.Size
		}
		if total > MaxMaterial {
			return nil, fmt.Errorf("the header and key slots are %d+ bytes, more than the %d a LUKS volume needs", total, MaxMaterial)
		}
	}
	return out, nil
}

// Sparse is a device of which only some ranges are known (the Material of
// a header); reads outside them fail.
type Sparse struct {
	ranges []Extent
	data   [][]byte
}

// NewSparse puts data, the bytes of ext one after the other, back at their
// offsets. ext must be what Material returns: ordered, disjoint.
func NewSparse(ext []Extent, data []byte) (*Sparse, error) {
	s := &Sparse{}
	var off, prevEnd int64
	for i, e := range ext {
		if e.Size <= 0 || e.Offset < 0 || (i > 0 && e.Offset < prevEnd) || e.Size > int64(len(data))-off {
			return nil, fmt.Errorf("header range %d (%d bytes at %d) invalid for %d bytes of data", i, e.Size, e.Offset, len(data))
		}
		s.ranges = append(s.ranges, e)
		s.data = append(s.data, data[off:off+e.Size])
		off += e.Size
		prevEnd = e.Offset + e.Size
	}
	if off != int64(len(data)) {
		return nil, fmt.Errorf("%d bytes of header data for ranges of %d", len(data), off)
	}
	return s, nil
}

// errNotSent is a read of a range the device's owner did not send.
var errNotSent = errors.New("range not in the header data")

// ReadAt implements io.ReaderAt within one known range.
func (s *Sparse) ReadAt(p []byte, off int64) (int, error) {
	for i, e := range s.ranges {
		if off >= e.Offset && off < e.Offset+e.Size {
			n := copy(p, s.data[i][off-e.Offset:])
			if n < len(p) {
				return n, fmt.Errorf("reading %d bytes at %d: %w", len(p), off, errNotSent)
			}
			return n, nil
		}
	}
	if len(p) == 0 {
		return 0, nil
	}
	return 0, fmt.Errorf("reading %d bytes at %d: %w", len(p), off, errNotSent)
}

// Wipe clears the data.
func (s *Sparse) Wipe() {
	for _, d := range s.data {
		clear(d)
	}
}

var _ io.ReaderAt = (*Sparse)(nil)

// CheckKey reports whether key is the volume key, by the header's digest:
// a key recovered elsewhere is checked before anything is mapped with it.
func (h *Header) CheckKey(key []byte) error {
	if len(key) != h.KeySize {
		return fmt.Errorf("the volume key has %d bytes, the header says %d", len(key), h.KeySize)
	}
	ok, err := h.checkDigest(key)
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("the volume key does not match the header's digest")
	}
	return nil
}
