// Package luks reads LUKS1 and LUKS2 headers and recovers the volume key
// from a passphrase, the way cryptsetup does, so the appliance can map a
// LUKS volume with dm-crypt without cryptsetup. Everything read from the
// disk is untrusted: sizes are bounded before anything is allocated.
package luks

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Magic strings of the primary and the LUKS2 secondary header.
var (
	magic1 = []byte("LUKS\xba\xbe")
	magic2 = []byte("SKUL\xba\xbe")
)

// ErrNotLUKS says the device has no LUKS header.
var ErrNotLUKS = errors.New("not a LUKS volume")

const (
	sectorSize = 512
	// maxKeySize bounds a volume key (cryptsetup's limit is 512 bytes).
	maxKeySize = 512
	// maxStripes bounds the anti-forensic stripes (cryptsetup always uses
	// 4000; the kernel-side limit is the keyslot area).
	maxStripes = 1 << 16
	// maxJSON bounds the LUKS2 JSON area (the format's largest is 4 MiB).
	maxJSON = 4<<20 - 4096
)

// Header is what a LUKS header says about its volume.
type Header struct {
	Version int
	UUID    string
	Label   string // LUKS2 only
	// Cipher is the payload cipher as dm-crypt spells it: aes-xts-plain64.
	Cipher  string
	KeySize int // bytes of the volume key
	// PayloadOffset is where the encrypted data starts, in bytes;
	// PayloadSize its length, 0 meaning to the end of the device.
	PayloadOffset int64
	PayloadSize   int64
	// IVTweak is the sector number the IVs of the payload start at.
	IVTweak uint64
	// PayloadSectorSize is the encryption sector size (512, or 4096 for
	// LUKS2 volumes formatted with --sector-size).
	PayloadSectorSize int
	// Keyslots are the active keyslots, in the order they are tried.
	Keyslots []Keyslot

	digest digest
	// spans are the header copies read (offset, size), for Material.
	spans []Extent
}

// Keyslot is one active keyslot: how to turn a passphrase into the key of
// its area, and where the area is.
type Keyslot struct {
	ID      string
	KDF     KDF
	Cipher  string // the area's cipher, dm-crypt spelling
	AreaKey int    // bytes of the area key
	Offset  int64  // area offset, bytes
	Size    int64  // area size, bytes
	Stripes int
	AFHash  string
}

// KDF derives a keyslot's area key from the passphrase.
type KDF struct {
	Type       string // pbkdf2, argon2i, argon2id
	Hash       string // pbkdf2
	Iterations int    // pbkdf2 iterations, argon2 time cost
	MemoryKiB  int    // argon2
	Threads    int    // argon2
	Salt       []byte
}

// digest checks a candidate volume key.
type digest struct {
	hash       string
	iterations int
	salt       []byte
	value      []byte
}

// Read reads the header of the LUKS volume r. For LUKS2 both header copies
// are read and the valid one with the higher sequence number is used.
func Read(r io.ReaderAt) (*Header, error) {
	var b [6 + 2]byte
	if _, err := r.ReadAt(b[:], 0); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, ErrNotLUKS
		}
		return nil, err
	}
	if !bytes.Equal(b[:6], magic1) && !bytes.Equal(b[:6], magic2) {
		return nil, ErrNotLUKS
	}
	switch v := binary.BigEndian.Uint16(b[6:]); v {
	case 1:
		return readLUKS1(r)
	case 2:
		return readLUKS2(r)
	default:
		return nil, fmt.Errorf("LUKS version %d is not supported", v)
	}
}

// IsLUKS reports whether the first bytes of a device are a LUKS header.
func IsLUKS(first []byte) bool {
	return len(first) >= 8 && (bytes.Equal(first[:6], magic1) || bytes.Equal(first[:6], magic2)) &&
		(binary.BigEndian.Uint16(first[6:8]) == 1 || binary.BigEndian.Uint16(first[6:8]) == 2)
}

// UUIDOf returns the UUID field of a LUKS header (the same offset in both
// versions), for probing without a full parse.
func UUIDOf(first []byte) string {
	if len(first) < 208 || !IsLUKS(first) {
		return ""
	}
	return cString(first[168:208])
}

func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return strings.TrimSpace(string(b))
}

// LUKS1 layout (the LUKS on-disk format specification 1.2.3).
const (
	luks1HeaderSize   = 592
	luks1KeyslotBase  = 208
	luks1KeyslotSize  = 48
	luks1Keyslots     = 8
	luks1SlotActive   = 0x00AC71F3
	luks1DigestSize   = 20
	luks1MaxIteration = 1 << 31
)

func readLUKS1(r io.ReaderAt) (*Header, error) {
	b := make([]byte, luks1HeaderSize)
	if _, err := r.ReadAt(b, 0); err != nil {
		return nil, fmt.Errorf("reading the LUKS1 header: %w", err)
	}
	be := binary.BigEndian
	h := &Header{Version: 1, UUID: cString(b[168:208]), PayloadSectorSize: sectorSize,
		spans: []Extent{{Offset: 0, Size: luks1HeaderSize}}}
	name, mode, hash := cString(b[8:40]), cString(b[40:72]), cString(b[72:104])
	h.Cipher = name + "-" + mode
	h.PayloadOffset = int64(be.Uint32(b[104:108])) * sectorSize
	h.KeySize = int(be.Uint32(b[108:112]))
	if h.KeySize <= 0 || h.KeySize > maxKeySize {
		return nil, fmt.Errorf("LUKS1 header: key size %d out of range", h.KeySize)
	}
	h.digest = digest{hash: hash, iterations: int(be.Uint32(b[164:168])),
		salt: append([]byte(nil), b[132:164]...), value: append([]byte(nil), b[112:132]...)}
	if h.digest.iterations <= 0 || h.digest.iterations > luks1MaxIteration {
		return nil, fmt.Errorf("LUKS1 header: digest iterations %d out of range", h.digest.iterations)
	}
	for i := 0; i < luks1Keyslots; i++ {
		s := b[luks1KeyslotBase+i*luks1KeyslotSize:][:luks1KeyslotSize]
		if be.Uint32(s[0:4]) != luks1SlotActive {
			continue
		}
		ks := Keyslot{ID: fmt.Sprint(i), Cipher: h.Cipher, AreaKey: h.KeySize, AFHash: hash,
			KDF:     KDF{Type: "pbkdf2", Hash: hash, Iterations: int(be.Uint32(s[4:8])), Salt: append([]byte(nil), s[8:40]...)},
			Offset:  int64(be.Uint32(s[40:44])) * sectorSize,
			Stripes: int(be.Uint32(s[44:48]))}
		if ks.Stripes <= 0 || ks.Stripes > maxStripes || ks.KDF.Iterations <= 0 || ks.KDF.Iterations > luks1MaxIteration {
			return nil, fmt.Errorf("LUKS1 keyslot %d: stripes %d or iterations %d out of range", i, ks.Stripes, ks.KDF.Iterations)
		}
		ks.Size = roundUp(int64(h.KeySize)*int64(ks.Stripes), sectorSize)
		h.Keyslots = append(h.Keyslots, ks)
	}
	return h, nil
}

func roundUp(n, to int64) int64 { return (n + to - 1) / to * to }

// LUKS2 binary header layout (LUKS2 on-disk format, version 1.1.x).
const (
	luks2BinSize  = 4096
	luks2CsumOff  = 448
	luks2CsumSize = 64
)

// luks2Offsets are where a secondary header may start: its offset is the
// size of the primary header area, one of these.
var luks2Offsets = []int64{0x4000, 0x8000, 0x10000, 0x20000, 0x40000, 0x80000, 0x100000, 0x200000, 0x400000}

type luks2Bin struct {
	hdrSize int64
	seqid   uint64
	label   string
	uuid    string
	hdrOff  int64
	json    []byte
}

// readLUKS2Bin reads and checks one LUKS2 header copy at off.
func readLUKS2Bin(r io.ReaderAt, off int64) (*luks2Bin, error) {
	bin := make([]byte, luks2BinSize)
	if _, err := r.ReadAt(bin, off); err != nil {
		return nil, err
	}
	want := magic1
	if off != 0 {
		want = magic2
	}
	if !bytes.Equal(bin[:6], want) || binary.BigEndian.Uint16(bin[6:8]) != 2 {
		return nil, errors.New("no LUKS2 header magic")
	}
	be := binary.BigEndian
	h := &luks2Bin{hdrSize: int64(be.Uint64(bin[8:16])), seqid: be.Uint64(bin[16:24]),
		label: cString(bin[24:72]), uuid: cString(bin[168:208]), hdrOff: int64(be.Uint64(bin[256:264]))}
	if h.hdrSize < luks2BinSize+4096 || h.hdrSize > luks2BinSize+maxJSON || h.hdrOff != off {
		return nil, fmt.Errorf("header size %d or offset %d invalid", h.hdrSize, h.hdrOff)
	}
	if alg := cString(bin[72:104]); alg != "sha256" {
		return nil, fmt.Errorf("header checksum algorithm %q is not supported", alg)
	}
	area := make([]byte, h.hdrSize-luks2BinSize)
	if _, err := r.ReadAt(area, off+luks2BinSize); err != nil {
		return nil, fmt.Errorf("reading the JSON area: %w", err)
	}
	sum := sha256.New()
	stored := append([]byte(nil), bin[luks2CsumOff:luks2CsumOff+sha256.Size]...)
	clear(bin[luks2CsumOff : luks2CsumOff+luks2CsumSize])
	sum.Write(bin)
	sum.Write(area)
	if subtle.ConstantTimeCompare(sum.Sum(nil), stored) != 1 {
		return nil, errors.New("header checksum mismatch")
	}
	if i := bytes.IndexByte(area, 0); i >= 0 {
		area = area[:i]
	}
	h.json = area
	return h, nil
}

func readLUKS2(r io.ReaderAt) (*Header, error) {
	primary, perr := readLUKS2Bin(r, 0)
	var secondary *luks2Bin
	var serr error = errors.New("not found")
	offs := luks2Offsets
	if primary != nil {
		offs = []int64{primary.hdrSize}
	}
	for _, off := range offs {
		if secondary, serr = readLUKS2Bin(r, off); serr == nil {
			break
		}
	}
	best := primary
	if best == nil || secondary != nil && secondary.seqid > best.seqid {
		best = secondary
	}
	if best == nil {
		return nil, fmt.Errorf("LUKS2 header: primary: %v; secondary: %v", perr, serr)
	}
	h, err := parseLUKS2JSON(best.json)
	if err != nil {
		return nil, fmt.Errorf("LUKS2 metadata: %w", err)
	}
	h.UUID, h.Label = best.uuid, best.label
	// Read looks at the primary's first bytes even when only the
	// secondary is valid.
	h.spans = []Extent{{Offset: 0, Size: luks2BinSize}}
	for _, c := range []*luks2Bin{primary, secondary} {
		if c != nil {
			h.spans = append(h.spans, Extent{Offset: c.hdrOff, Size: c.hdrSize})
		}
	}
	return h, nil
}

// luks2Metadata is the part of the LUKS2 JSON metadata used here.
type luks2Metadata struct {
	Keyslots map[string]struct {
		Type     string `json:"type"`
		KeySize  int    `json:"key_size"`
		Priority *int   `json:"priority"`
		AF       struct {
			Type    string `json:"type"`
			Stripes int    `json:"stripes"`
			Hash    string `json:"hash"`
		} `json:"af"`
		Area struct {
			Type       string  `json:"type"`
			Offset     jsonU64 `json:"offset"`
			Size       jsonU64 `json:"size"`
			Encryption string  `json:"encryption"`
			KeySize    int     `json:"key_size"`
		} `json:"area"`
		KDF struct {
			Type       string `json:"type"`
			Hash       string `json:"hash"`
			Iterations int    `json:"iterations"`
			Time       int    `json:"time"`
			Memory     int    `json:"memory"`
			CPUs       int    `json:"cpus"`
			Salt       []byte `json:"salt"` // base64
		} `json:"kdf"`
	} `json:"keyslots"`
	Segments map[string]struct {
		Type       string  `json:"type"`
		Offset     jsonU64 `json:"offset"`
		Size       string  `json:"size"`
		IVTweak    jsonU64 `json:"iv_tweak"`
		Encryption string  `json:"encryption"`
		SectorSize int     `json:"sector_size"`
		Integrity  any     `json:"integrity"`
	} `json:"segments"`
	Digests map[string]struct {
		Type       string   `json:"type"`
		Keyslots   []string `json:"keyslots"`
		Segments   []string `json:"segments"`
		Hash       string   `json:"hash"`
		Iterations int      `json:"iterations"`
		Salt       []byte   `json:"salt"`
		Digest     []byte   `json:"digest"`
	} `json:"digests"`
	Config struct {
		Requirements struct {
			Mandatory []string `json:"mandatory"`
		} `json:"requirements"`
	} `json:"config"`
}

// jsonU64 is a LUKS2 number, which the format stores as a decimal string.
type jsonU64 uint64

func (v *jsonU64) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	var n uint64
	if _, err := fmt.Sscan(s, &n); err != nil || fmt.Sprint(n) != s {
		return fmt.Errorf("invalid number %q", s)
	}
	*v = jsonU64(n)
	return nil
}

func parseLUKS2JSON(data []byte) (*Header, error) {
	var md luks2Metadata
	if err := json.Unmarshal(data, &md); err != nil {
		return nil, err
	}
	if len(md.Config.Requirements.Mandatory) > 0 {
		return nil, fmt.Errorf("the volume requires %s (an interrupted reencryption?), which is not supported",
			strings.Join(md.Config.Requirements.Mandatory, ", "))
	}
	h := &Header{Version: 2}
	// The payload: the one crypt segment ("0" in every cryptsetup layout
	// without reencryption in progress).
	seg, ok := md.Segments["0"]
	if !ok || len(md.Segments) != 1 {
		return nil, fmt.Errorf("%d segments; only volumes with one segment are supported", len(md.Segments))
	}
	if seg.Type != "crypt" {
		return nil, fmt.Errorf("segment type %q is not supported", seg.Type)
	}
	if seg.Integrity != nil {
		return nil, errors.New("authenticated encryption (dm-integrity) is not supported")
	}
	if seg.SectorSize != 512 && seg.SectorSize != 1024 && seg.SectorSize != 2048 && seg.SectorSize != 4096 {
		return nil, fmt.Errorf("segment sector size %d invalid", seg.SectorSize)
	}
	if seg.Offset > 1<<62 || seg.Offset%sectorSize != 0 {
		return nil, fmt.Errorf("segment offset %d invalid", seg.Offset)
	}
	h.Cipher, h.PayloadOffset, h.IVTweak, h.PayloadSectorSize = seg.Encryption, int64(seg.Offset), uint64(seg.IVTweak), seg.SectorSize
	if seg.Size != "dynamic" {
		var n int64
		if _, err := fmt.Sscan(seg.Size, &n); err != nil || n <= 0 || n%sectorSize != 0 || fmt.Sprint(n) != seg.Size {
			return nil, fmt.Errorf("segment size %q invalid", seg.Size)
		}
		h.PayloadSize = n
	}
	// The volume key digest of segment 0 and the keyslots it covers.
	slotOK := map[string]bool{}
	found := false
	for _, id := range sortedKeys(md.Digests) {
		d := md.Digests[id]
		for _, s := range d.Segments {
			if s != "0" || found {
				continue
			}
			if d.Type != "pbkdf2" {
				return nil, fmt.Errorf("digest type %q is not supported", d.Type)
			}
			if d.Iterations <= 0 || d.Iterations > 1<<31 || len(d.Digest) == 0 {
				return nil, fmt.Errorf("digest %s: iterations %d or digest invalid", id, d.Iterations)
			}
			h.digest = digest{hash: d.Hash, iterations: d.Iterations, salt: d.Salt, value: d.Digest}
			for _, k := range d.Keyslots {
				slotOK[k] = true
			}
			found = true
		}
	}
	if !found {
		return nil, errors.New("no digest covers the payload segment")
	}
	var high, normal []Keyslot
	for _, id := range sortedKeys(md.Keyslots) {
		k := md.Keyslots[id]
		if k.Type != "luks2" || !slotOK[id] || k.Priority != nil && *k.Priority == 0 {
			continue // reencryption slots, slots of other segments, and those marked "ignore"
		}
		if k.KeySize <= 0 || k.KeySize > maxKeySize || k.Area.KeySize <= 0 || k.Area.KeySize > maxKeySize {
			return nil, fmt.Errorf("keyslot %s: key size %d / %d out of range", id, k.KeySize, k.Area.KeySize)
		}
		if h.KeySize == 0 {
			h.KeySize = k.KeySize
		} else if h.KeySize != k.KeySize {
			return nil, fmt.Errorf("keyslot %s: key size %d, others %d", id, k.KeySize, h.KeySize)
		}
		if k.AF.Type != "luks1" || k.AF.Stripes <= 0 || k.AF.Stripes > maxStripes {
			return nil, fmt.Errorf("keyslot %s: anti-forensic splitter %q with %d stripes is not supported", id, k.AF.Type, k.AF.Stripes)
		}
		if k.Area.Type != "raw" {
			return nil, fmt.Errorf("keyslot %s: area type %q is not supported", id, k.Area.Type)
		}
		need := roundUp(int64(k.KeySize)*int64(k.AF.Stripes), sectorSize)
		if k.Area.Offset > 1<<62 || k.Area.Size > 1<<40 || int64(k.Area.Size) < need || k.Area.Offset%sectorSize != 0 {
			return nil, fmt.Errorf("keyslot %s: area offset %d size %d invalid", id, k.Area.Offset, k.Area.Size)
		}
		kdf := KDF{Type: k.KDF.Type, Hash: k.KDF.Hash, Salt: k.KDF.Salt}
		switch k.KDF.Type {
		case "pbkdf2":
			kdf.Iterations = k.KDF.Iterations
		case "argon2i", "argon2id":
			kdf.Iterations, kdf.MemoryKiB, kdf.Threads = k.KDF.Time, k.KDF.Memory, k.KDF.CPUs
			if kdf.MemoryKiB <= 0 || kdf.MemoryKiB > 4<<20 || kdf.Threads <= 0 || kdf.Threads > 255 {
				return nil, fmt.Errorf("keyslot %s: argon2 memory %d KiB or %d threads out of range", id, kdf.MemoryKiB, kdf.Threads)
			}
		default:
			return nil, fmt.Errorf("keyslot %s: KDF %q is not supported", id, k.KDF.Type)
		}
		if kdf.Iterations <= 0 || kdf.Iterations > 1<<31 {
			return nil, fmt.Errorf("keyslot %s: KDF cost %d out of range", id, kdf.Iterations)
		}
		ks := Keyslot{ID: id, KDF: kdf, Cipher: k.Area.Encryption, AreaKey: k.Area.KeySize,
			Offset: int64(k.Area.Offset), Size: need, Stripes: k.AF.Stripes, AFHash: k.AF.Hash}
		if k.Priority != nil && *k.Priority == 2 {
			high = append(high, ks)
		} else {
			normal = append(normal, ks)
		}
	}
	h.Keyslots = append(high, normal...)
	return h, nil
}

// sortedKeys returns the ids of a LUKS2 object in numeric order (ids are
// decimal numbers; shorter is smaller).
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if len(a) != len(b) {
			return cmp.Compare(len(a), len(b))
		}
		return strings.Compare(a, b)
	})
	return keys
}

// DMTable is the dm-crypt table parameters of the payload for device dev
// (major:minor or a path) with volume key key:
// "CIPHER HEXKEY IV_OFFSET DEVICE OFFSET [1 sector_size:N]".
func (h *Header) DMTable(key []byte, dev string) []byte {
	var b bytes.Buffer
	b.WriteString(h.Cipher)
	b.WriteByte(' ')
	hk := make([]byte, hex.EncodedLen(len(key)))
	hex.Encode(hk, key)
	b.Write(hk)
	clear(hk)
	fmt.Fprintf(&b, " %d %s %d", h.IVTweak, dev, h.PayloadOffset/sectorSize)
	if h.PayloadSectorSize != sectorSize {
		// The IVs stay counted in 512-byte sectors (no iv_large_sectors):
		// cryptsetup maps LUKS2 volumes so.
		fmt.Fprintf(&b, " 1 sector_size:%d", h.PayloadSectorSize)
	}
	return b.Bytes()
}
