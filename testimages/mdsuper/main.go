// Command mdsuper writes the md RAID1 metadata 1.2 superblock of one
// member of a clean array into a disk image, so a RAID test image can be
// made on a host without md (the host kernel has none). Each member gets
// the 4 KiB superblock at 4 KiB into its partition, no bitmap, no bad-block
// log, its data from -data-offset sectors on; the array's data (the same on
// every member of a RAID1) is written there separately. The result is
// checked with the host's `mdadm --examine` on a loop device of the member
// (build.sh), which shares no code with this; the format is the kernel's
// struct mdp_superblock_1 (include/uapi/linux/raid/md_p.h).
//
// Usage:
//
//	mdsuper -disk FILE -start SECTOR -size SECTORS -uuid UUID -name NAME
//	        -devuuid UUID -number N -raid-disks N -data-offset SECTORS
//	        -array-size SECTORS -time UNIX
package main

import (
	"encoding/binary"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"strings"
)

const (
	magic    = 0xa92b4efc
	sbOffset = 4096 // metadata 1.2
	maxDev   = 128  // dev_roles entries, as mdadm writes: a 512-byte superblock
)

func main() {
	disk := flag.String("disk", "", "disk image to write into")
	start := flag.Int64("start", 0, "member partition start, in 512-byte sectors")
	size := flag.Int64("size", 0, "member partition size, in sectors")
	arrayUUID := flag.String("uuid", "", "array UUID")
	name := flag.String("name", "", "array name (host:name)")
	devUUID := flag.String("devuuid", "", "this member's device UUID")
	number := flag.Int("number", 0, "this member's slot (dev_number and role)")
	raidDisks := flag.Int("raid-disks", 2, "members of the array")
	dataOffset := flag.Int64("data-offset", 2048, "data offset in sectors")
	arraySize := flag.Int64("array-size", 0, "sectors of data on each member (0: all after the data offset, whole MiB)")
	when := flag.Int64("time", 0, "creation and update time (Unix seconds)")
	flag.Parse()
	if err := run(*disk, *start, *size, *arrayUUID, *name, *devUUID, *number, *raidDisks, *dataOffset, *arraySize, *when); err != nil {
		fmt.Fprintln(os.Stderr, "mdsuper:", err)
		os.Exit(1)
	}
}

func parseUUID(s string) ([]byte, error) {
	b, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err != nil || len(b) != 16 {
		return nil, fmt.Errorf("bad UUID %q", s)
	}
	return b, nil
}

func run(disk string, start, size int64, arrayUUID, name, devUUID string, number, raidDisks int, dataOffset, arraySize, when int64) error {
	au, err := parseUUID(arrayUUID)
	if err != nil {
		return err
	}
	du, err := parseUUID(devUUID)
	if err != nil {
		return err
	}
	if len(name) >= 32 {
		return fmt.Errorf("name %q longer than 31 bytes", name)
	}
	if number < 0 || number >= raidDisks || raidDisks > maxDev {
		return fmt.Errorf("member %d of %d out of range", number, raidDisks)
	}
	dataSize := size - dataOffset
	if dataSize <= 0 {
		return fmt.Errorf("partition of %d sectors has no room after the data offset %d", size, dataOffset)
	}
	if arraySize == 0 {
		arraySize = dataSize &^ 2047 // whole MiB, as mdadm rounds
	}
	if arraySize > dataSize {
		return fmt.Errorf("array size %d larger than the member's data area %d", arraySize, dataSize)
	}
	sb := make([]byte, 4096)
	le := binary.LittleEndian
	le.PutUint32(sb[0:], magic)
	le.PutUint32(sb[4:], 1) // major_version
	le.PutUint32(sb[8:], 0) // feature_map: no bitmap, no bad-block log
	copy(sb[16:32], au)
	copy(sb[32:64], name)
	le.PutUint64(sb[64:], uint64(when)) // ctime
	le.PutUint32(sb[72:], 1)            // level
	le.PutUint32(sb[76:], 0)            // layout
	le.PutUint64(sb[80:], uint64(arraySize))
	le.PutUint32(sb[88:], 0) // chunksize (RAID1 has none)
	le.PutUint32(sb[92:], uint32(raidDisks))
	le.PutUint64(sb[128:], uint64(dataOffset))
	le.PutUint64(sb[136:], uint64(dataSize))
	le.PutUint64(sb[144:], sbOffset/512) // super_offset
	le.PutUint32(sb[160:], uint32(number))
	copy(sb[168:184], du)
	le.PutUint64(sb[192:], uint64(when)) // utime
	le.PutUint64(sb[200:], 1)            // events
	le.PutUint64(sb[208:], ^uint64(0))   // resync_offset: in sync
	le.PutUint32(sb[220:], maxDev)
	for i := 0; i < maxDev; i++ {
		role := uint16(0xffff) // no device
		if i < raidDisks {
			role = uint16(i)
		}
		le.PutUint16(sb[256+2*i:], role)
	}
	le.PutUint32(sb[216:], csum(sb[:256+2*maxDev]))

	f, err := os.OpenFile(disk, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(sb, start*512+sbOffset); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// csum is calc_sb_1_csum: the little-endian 32-bit words summed in 64
// bits (sb_csum zero), the carry folded back once.
func csum(sb []byte) uint32 {
	var sum uint64
	for i := 0; i+4 <= len(sb); i += 4 {
		if i != 216 {
			sum += uint64(binary.LittleEndian.Uint32(sb[i:]))
		}
	}
	return uint32(sum&0xffffffff) + uint32(sum>>32)
}
