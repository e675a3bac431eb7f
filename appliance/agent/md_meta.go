package agent

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// md RAID superblocks, read to recognise a member device and to group the
// members of one array: the kernel reads and checks them itself when the
// array is assembled (md.go), so only the fields that say which array a
// device belongs to are taken here. Layouts: the kernel's
// include/uapi/linux/raid/md_p.h (struct mdp_superblock_1 and
// mdp_superblock_s).

const (
	mdMagic      = 0xa92b4efc
	mdSuper1Size = 256  // fixed part of a v1 superblock; dev_roles follow
	mdSuper0Size = 4096 // a 0.90 superblock
	mdMaxDev1    = 1920 // the kernel's limit for max_dev (sb within 4 KiB)
)

// mdSuper is what a member's superblock says.
type mdSuper struct {
	major, minor int      // metadata version: 1.0, 1.1, 1.2 or 0.90
	offset       int64    // of the superblock on the device, in bytes
	uuid         [16]byte // the array's
	name         string   // v1 only: "host:name" or "name"
	level        int32    // -1 linear, 0, 1, 4, 5, 6, 10
	raidDisks    int
	role         int    // this device's slot; -1 a spare, -2 faulty
	events       uint64 // update count: the newest member wins
	preferMinor  int    // 0.90 only: the md minor it was created as; else -1
}

// Version is the metadata version as mdadm writes it.
func (s *mdSuper) Version() string {
	if s.major == 0 {
		return "0.90"
	}
	return fmt.Sprintf("1.%d", s.minor)
}

// UUID is the array's UUID as blkid prints it.
func (s *mdSuper) UUID() string { return formatUUID(s.uuid[:]) }

var errNoMDSuper = errors.New("no md superblock")

// mdSuperOffsets are where each metadata version keeps its superblock on a
// device of size bytes, in the order they are tried.
func mdSuperOffsets(size int64) []struct {
	major, minor int
	off          int64
} {
	sectors := size / 512
	out := []struct {
		major, minor int
		off          int64
	}{{1, 2, 4096}, {1, 1, 0}}
	if sectors >= 16 {
		out = append(out, struct {
			major, minor int
			off          int64
		}{1, 0, ((sectors - 16) &^ 7) * 512})
	}
	if sectors >= 128 {
		out = append(out, struct {
			major, minor int
			off          int64
		}{0, 90, ((sectors &^ 127) - 128) * 512})
	}
	return out
}

// readMDSuper finds an md superblock on a device of size bytes; atEnd
// also searches where metadata 1.0 and 0.90 keep theirs.
func readMDSuper(r io.ReaderAt, size int64, atEnd bool) (*mdSuper, error) {
	buf := make([]byte, mdSuper0Size)
	for _, at := range mdSuperOffsets(size) {
		if !atEnd && (at.major != 1 || at.minor == 0) {
			continue
		}
		n, _ := r.ReadAt(buf, at.off)
		if n < mdSuper1Size || binary.LittleEndian.Uint32(buf) != mdMagic {
			continue
		}
		var s *mdSuper
		var err error
		if at.major == 1 {
			s, err = parseMDSuper1(buf[:n], at.off)
		} else {
			s, err = parseMDSuper0(buf[:n])
		}
		if err != nil {
			return nil, fmt.Errorf("md metadata %d.%d at byte %d: %w", at.major, at.minor, at.off, err)
		}
		s.minor = at.minor
		s.offset = at.off
		return s, nil
	}
	return nil, errNoMDSuper
}

// parseMDSuper1 checks and reads a v1 superblock found at byte off.
func parseMDSuper1(b []byte, off int64) (*mdSuper, error) {
	le := binary.LittleEndian
	if len(b) < mdSuper1Size {
		return nil, errors.New("superblock truncated")
	}
	if v := le.Uint32(b[4:]); v != 1 {
		return nil, fmt.Errorf("major version %d, want 1", v)
	}
	if so := le.Uint64(b[144:]); so != uint64(off/512) {
		return nil, fmt.Errorf("super_offset %d does not match its place (sector %d)", so, off/512)
	}
	maxDev := int(le.Uint32(b[220:]))
	if maxDev > mdMaxDev1 {
		return nil, fmt.Errorf("max_dev %d out of range", maxDev)
	}
	size := mdSuper1Size + 2*maxDev
	if size > len(b) {
		return nil, errors.New("superblock truncated")
	}
	if got, want := mdCsum1(b[:size]), le.Uint32(b[216:]); got != want {
		return nil, fmt.Errorf("checksum %#08x, want %#08x", want, got)
	}
	s := &mdSuper{major: 1, preferMinor: -1}
	copy(s.uuid[:], b[16:32])
	s.name = cString(b[32:64])
	s.level = int32(le.Uint32(b[72:]))
	s.raidDisks = int(le.Uint32(b[92:]))
	s.events = le.Uint64(b[200:])
	devNumber := int(le.Uint32(b[160:]))
	s.role = -1
	if devNumber < maxDev {
		switch r := le.Uint16(b[mdSuper1Size+2*devNumber:]); r {
		case 0xffff:
			s.role = -1 // spare
		case 0xfffe:
			s.role = -2 // faulty
		default:
			s.role = int(r)
		}
	}
	if s.raidDisks > mdMaxDev1 {
		return nil, fmt.Errorf("raid_disks %d out of range", s.raidDisks)
	}
	return s, nil
}

// mdCsum1 is the kernel's calc_sb_1_csum over a v1 superblock with its
// dev_roles (sb_csum itself counted as zero).
func mdCsum1(sb []byte) uint32 {
	var sum uint64
	n := len(sb)
	for i := 0; i+4 <= n; i += 4 {
		if i == 216 {
			continue
		}
		sum += uint64(binary.LittleEndian.Uint32(sb[i:]))
	}
	if n%4 == 2 {
		sum += uint64(binary.LittleEndian.Uint16(sb[n-2:]))
	}
	return uint32(sum&0xffffffff) + uint32(sum>>32)
}

// parseMDSuper0 checks and reads a 0.90 superblock (little-endian: the
// x86 hosts it is written on store it in their own byte order).
func parseMDSuper0(b []byte) (*mdSuper, error) {
	le := binary.LittleEndian
	if len(b) < mdSuper0Size {
		return nil, errors.New("superblock truncated")
	}
	if maj, min := le.Uint32(b[4:]), le.Uint32(b[8:]); maj != 0 || min != 90 {
		return nil, fmt.Errorf("version %d.%d, want 0.90", maj, min)
	}
	if got, want := mdCsum0(b[:mdSuper0Size]), le.Uint32(b[128+6*4:]); got != want {
		return nil, fmt.Errorf("checksum %#08x, want %#08x", want, got)
	}
	s := &mdSuper{major: 0}
	// The UUID's four words as mdadm and blkid print them: each a
	// host-order integer.
	for i, at := range []int{20, 52, 56, 60} {
		binary.BigEndian.PutUint32(s.uuid[4*i:], le.Uint32(b[at:]))
	}
	s.level = int32(le.Uint32(b[28:]))
	s.raidDisks = int(le.Uint32(b[40:]))
	s.preferMinor = int(le.Uint32(b[44:]))
	s.events = uint64(le.Uint32(b[128+8*4:]))<<32 | uint64(le.Uint32(b[128+7*4:]))
	// this_disk: the descriptor at word 992 (number, major, minor,
	// raid_disk, state); state bit 0 faulty, 1 active.
	this := b[992*4:]
	state := le.Uint32(this[16:])
	switch {
	case state&1 != 0:
		s.role = -2
	case state&2 != 0:
		s.role = int(le.Uint32(this[12:]))
	default:
		s.role = -1
	}
	if s.raidDisks > 27 || s.preferMinor > 1<<20 {
		return nil, fmt.Errorf("raid_disks %d or md_minor %d out of range", s.raidDisks, s.preferMinor)
	}
	return s, nil
}

// mdCsum0 is the kernel's calc_sb_csum for 0.90: the 32-bit words summed
// into 64 bits, sb_csum as zero, folded.
func mdCsum0(sb []byte) uint32 {
	var sum uint64
	for i := 0; i+4 <= len(sb); i += 4 {
		if i == 128+6*4 {
			continue
		}
		sum += uint64(binary.LittleEndian.Uint32(sb[i:]))
	}
	return uint32(sum&0xffffffff) + uint32(sum>>32)
}

// mdShortName is an array name without its "host:" prefix, as the
// machine that made it names it under /dev/md.
func mdShortName(name string) string {
	if _, short, ok := strings.Cut(name, ":"); ok {
		return short
	}
	return name
}
