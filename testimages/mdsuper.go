package testimages

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
)

// MDMember describes one member of a clean md array, for WriteMDMember.
// Sizes and offsets are in 512-byte sectors.
type MDMember struct {
	Metadata   string // "1.2", "1.0" or "0.90"
	Level      string // "raid1" (also ""), or with metadata 1.x "raid0", "raid5", "raid6", "raid10"
	Layout     uint32 // raid5, raid6: MDLeftSymmetric; raid10: MDNear2
	Chunk      uint32 // chunk size in sectors (raid0, raid5, raid10)
	UUID       string // the array's
	Name       string // v1: "host:name"
	DevUUID    string // v1: this member's
	Number     int    // slot
	RaidDisks  int
	DataOffset int64 // v1.2: where the data starts (1.0 and 0.90: 0)
	ArraySize  int64 // sectors of data used on each member; 0: as much as fits, whole MiB (v1) or 64 KiB (0.90)
	MinorHint  int   // 0.90: the md minor it was made as
	Time       int64 // creation and update time (Unix seconds)
}

const mdMagic = 0xa92b4efc

// md layouts (drivers/md/raid5.h ALGORITHM_LEFT_SYMMETRIC; raid10's
// near_copies | far_copies<<8).
const (
	MDLeftSymmetric = 2
	MDNear2         = 0x102
)

// mdLevel is the superblock's level number of a level name.
func mdLevel(name string) (uint32, error) {
	switch name {
	case "", "raid1":
		return 1, nil
	case "raid0":
		return 0, nil
	case "raid5":
		return 5, nil
	case "raid6":
		return 6, nil
	case "raid10":
		return 10, nil
	}
	return 0, fmt.Errorf("RAID level %q: want raid0, raid1, raid5, raid6 or raid10", name)
}

// WriteMDMember writes the superblock of member m into the partition of
// disk that starts at start and is size sectors long, where its metadata
// version keeps it, and returns where the array's data lies in the
// partition (offset, length in sectors). The layouts are the kernel's
// (include/uapi/linux/raid/md_p.h); no bitmap, no bad-block log; the
// array is clean. It is checked by the host's `mdadm --examine`, which
// shares no code with it (build.sh, the tests).
func WriteMDMember(disk string, start, size int64, m MDMember) (dataOffset, dataSize int64, err error) {
	au, err := parseMDUUID(m.UUID)
	if err != nil {
		return 0, 0, err
	}
	if m.Number < 0 || m.Number >= m.RaidDisks || m.RaidDisks > 27 {
		return 0, 0, fmt.Errorf("member %d of %d out of range", m.Number, m.RaidDisks)
	}
	level, err := mdLevel(m.Level)
	if err != nil {
		return 0, 0, err
	}
	if level != 1 && m.Metadata == "0.90" {
		return 0, 0, fmt.Errorf("%s with metadata 0.90: only raid1 is written", m.Level)
	}
	if level != 1 && (m.Chunk == 0 || m.Chunk&(m.Chunk-1) != 0 || m.ArraySize%int64(m.Chunk) != 0) {
		return 0, 0, fmt.Errorf("%s: chunk %d must be a power of two dividing the array size %d", m.Level, m.Chunk, m.ArraySize)
	}
	var sb []byte
	var sbOff int64 // bytes into the partition
	switch m.Metadata {
	case "1.2", "1.0":
		du, err := parseMDUUID(m.DevUUID)
		if err != nil {
			return 0, 0, err
		}
		if len(m.Name) >= 32 {
			return 0, 0, fmt.Errorf("name %q longer than 31 bytes", m.Name)
		}
		var room int64
		if m.Metadata == "1.2" {
			sbOff, dataOffset = 4096, m.DataOffset
			room = size - dataOffset
		} else {
			sbOff, dataOffset = ((size-16)&^7)*512, 0
			room = sbOff / 512
		}
		if room <= 0 {
			return 0, 0, fmt.Errorf("partition of %d sectors has no room for data", size)
		}
		arraySize := m.ArraySize
		if arraySize == 0 {
			arraySize = room &^ 2047
		}
		if arraySize > room {
			return 0, 0, fmt.Errorf("array size %d larger than the member's data area %d", arraySize, room)
		}
		sb = mdSuper1(au, du, m, level, sbOff, dataOffset, room, arraySize)
		dataSize = arraySize
	case "0.90":
		sbOff = ((size &^ 127) - 128) * 512
		arraySize := m.ArraySize
		if arraySize == 0 {
			arraySize = sbOff / 512
		}
		if arraySize > sbOff/512 || arraySize%2 != 0 {
			return 0, 0, fmt.Errorf("array size %d does not fit before the superblock", arraySize)
		}
		sb = mdSuper090(au, m, arraySize)
		dataSize = arraySize
	default:
		return 0, 0, fmt.Errorf("metadata %q: want 1.2, 1.0 or 0.90", m.Metadata)
	}
	f, err := os.OpenFile(disk, os.O_WRONLY, 0)
	if err != nil {
		return 0, 0, err
	}
	if _, err := f.WriteAt(sb, start*512+sbOff); err != nil {
		f.Close()
		return 0, 0, err
	}
	return dataOffset, dataSize, f.Close()
}

func parseMDUUID(s string) ([]byte, error) {
	b, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err != nil || len(b) != 16 {
		return nil, fmt.Errorf("bad UUID %q", s)
	}
	return b, nil
}

// mdSuper1 is a struct mdp_superblock_1 with 128 dev_roles (512 bytes, as
// mdadm writes it) in a 4 KiB block.
func mdSuper1(au, du []byte, m MDMember, level uint32, sbOff, dataOffset, dataSize, arraySize int64) []byte {
	const maxDev = 128
	sb := make([]byte, 4096)
	le := binary.LittleEndian
	le.PutUint32(sb[0:], mdMagic)
	le.PutUint32(sb[4:], 1) // major_version; feature_map 0
	copy(sb[16:32], au)
	copy(sb[32:64], m.Name)
	le.PutUint64(sb[64:], uint64(m.Time)) // ctime
	le.PutUint32(sb[72:], level)
	le.PutUint32(sb[76:], m.Layout)
	le.PutUint64(sb[80:], uint64(arraySize)) // size: the sectors used on each member
	le.PutUint32(sb[88:], m.Chunk)
	le.PutUint32(sb[92:], uint32(m.RaidDisks))
	le.PutUint64(sb[128:], uint64(dataOffset))
	le.PutUint64(sb[136:], uint64(dataSize))
	le.PutUint64(sb[144:], uint64(sbOff/512)) // super_offset
	le.PutUint32(sb[160:], uint32(m.Number))  // dev_number
	copy(sb[168:184], du)
	le.PutUint64(sb[192:], uint64(m.Time)) // utime
	le.PutUint64(sb[200:], 1)              // events
	le.PutUint64(sb[208:], ^uint64(0))     // resync_offset: in sync
	le.PutUint32(sb[220:], maxDev)
	for i := 0; i < maxDev; i++ {
		role := uint16(0xffff)
		if i < m.RaidDisks {
			role = uint16(i)
		}
		le.PutUint16(sb[256+2*i:], role)
	}
	// calc_sb_1_csum: 32-bit words summed in 64 bits, sb_csum as zero,
	// the carry folded once.
	var sum uint64
	for i := 0; i < 256+2*maxDev; i += 4 {
		sum += uint64(le.Uint32(sb[i:]))
	}
	le.PutUint32(sb[216:], uint32(sum&0xffffffff)+uint32(sum>>32))
	return sb
}

// mdSuper090 is a 0.90 superblock (mdp_superblock_s, little-endian as an
// x86 host writes it): member m of a clean RAID1.
func mdSuper090(au []byte, m MDMember, arraySize int64) []byte {
	sb := make([]byte, 4096)
	le := binary.LittleEndian
	le.PutUint32(sb[0:], mdMagic)
	le.PutUint32(sb[8:], 90) // major 0, minor 90
	copy(sb[20:24], au[0:4])
	le.PutUint32(sb[24:], uint32(m.Time))
	le.PutUint32(sb[28:], 1)                   // level
	le.PutUint32(sb[32:], uint32(arraySize/2)) // size in KiB
	le.PutUint32(sb[36:], uint32(m.RaidDisks)) // nr_disks
	le.PutUint32(sb[40:], uint32(m.RaidDisks)) // raid_disks
	le.PutUint32(sb[44:], uint32(m.MinorHint)) // md_minor
	copy(sb[52:64], au[4:16])
	st := sb[128:]
	le.PutUint32(st[0:], uint32(m.Time)) // utime
	le.PutUint32(st[4:], 1)              // state: clean
	le.PutUint32(st[8:], uint32(m.RaidDisks))
	le.PutUint32(st[12:], uint32(m.RaidDisks))
	le.PutUint32(st[28:], 1) // events_lo
	desc := func(d []byte, i int) {
		le.PutUint32(d[0:], uint32(i))  // number
		le.PutUint32(d[12:], uint32(i)) // raid_disk
		le.PutUint32(d[16:], 6)         // active, sync
	}
	for i := 0; i < m.RaidDisks; i++ {
		desc(sb[512+i*128:], i)
	}
	desc(sb[992*4:], m.Number) // this_disk
	var sum uint64
	for i := 0; i < 4096; i += 4 {
		sum += uint64(le.Uint32(sb[i:]))
	}
	le.PutUint32(st[24:], uint32(sum&0xffffffff)+uint32(sum>>32))
	return sb
}
