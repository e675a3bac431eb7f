// Command mdsuper writes the md RAID1 superblock of one member of a clean
// array into a disk image (testimages.WriteMDMember), so a RAID test image
// can be made on a host without md (the host kernel has none). The
// array's data (the same on every member of a RAID1) is written
// separately, where it prints: "DATA_OFFSET DATA_SIZE" in sectors from the
// partition's start. build.sh checks the result with the host's
// `mdadm --examine`, which shares no code with this.
//
// Usage:
//
//	mdsuper -disk FILE -start SECTOR -size SECTORS -metadata 1.2|1.0|0.90
//	        -uuid UUID [-name NAME -devuuid UUID] -number N -raid-disks N
//	        [-data-offset SECTORS] [-array-size SECTORS] [-minor N] -time UNIX
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/imgbake/imgbake/testimages"
)

func main() {
	disk := flag.String("disk", "", "disk image to write into")
	start := flag.Int64("start", 0, "member partition start, in 512-byte sectors")
	size := flag.Int64("size", 0, "member partition size, in sectors")
	var m testimages.MDMember
	flag.StringVar(&m.Metadata, "metadata", "1.2", "metadata version: 1.2, 1.0 or 0.90")
	flag.StringVar(&m.UUID, "uuid", "", "array UUID")
	flag.StringVar(&m.Name, "name", "", "array name (host:name; v1)")
	flag.StringVar(&m.DevUUID, "devuuid", "", "this member's device UUID (v1)")
	flag.IntVar(&m.Number, "number", 0, "this member's slot")
	flag.IntVar(&m.RaidDisks, "raid-disks", 2, "members of the array")
	flag.Int64Var(&m.DataOffset, "data-offset", 2048, "data offset in sectors (1.2)")
	flag.Int64Var(&m.ArraySize, "array-size", 0, "sectors of data on each member (0: as much as fits)")
	flag.IntVar(&m.MinorHint, "minor", 0, "preferred md minor (0.90)")
	flag.Int64Var(&m.Time, "time", 0, "creation and update time (Unix seconds)")
	flag.Parse()
	off, n, err := testimages.WriteMDMember(*disk, *start, *size, m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mdsuper:", err)
		os.Exit(1)
	}
	fmt.Println(off, n)
}
