package agent

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/diskfs/go-diskfs/partition/mbr"

	"github.com/imgbake/imgbake/appliance/proto"
)

// The partition table is read and written with go-diskfs. Its GPT code
// trusts the header it reads (an entry size of 0 loops forever, a huge
// entry count allocates without bound, the array is written after "my
// LBA" wherever that points, the entry size written is always 128, a
// protective MBR's size is truncated to 32 bits), and a primary GPT that
// fails its checks makes it read the backup from the end of the disk. So
// the few header fields it depends on are checked first, the backup is
// never read, and the table it would write is compared with the one on
// the disk before anything is written: only the fields a grow changes may
// differ, so every GUID, type, name and attribute stays as it was.

const (
	gptEntrySize = 128
	// gptMaxEntries bounds the partition array read (128 is usual; 4096
	// entries are 512 KiB).
	gptMaxEntries = 4096
	// mbrMaxSectors is the most an MBR entry's 32-bit fields address.
	mbrMaxSectors = 1<<32 - 1
)

var errNoTable = errors.New("the disk has no partition table (neither GPT nor MBR)")

// growPartitionTable rewrites the partition table on disk (an open block
// device or image file of size bytes, sectorSize-byte logical sectors) so
// that partition number ends at the end of the disk. It changes nothing
// when that is already so, and refuses, writing nothing, when another
// partition follows it or the table is not one it can rewrite faithfully.
func growPartitionTable(disk *os.File, size int64, sectorSize, physSectorSize, number int) (proto.GrowPartitionResult, error) {
	res := proto.GrowPartitionResult{SectorSize: sectorSize}
	if sectorSize < 512 || sectorSize&(sectorSize-1) != 0 {
		return res, fmt.Errorf("unsupported logical sector size %d", sectorSize)
	}
	if physSectorSize < sectorSize {
		physSectorSize = sectorSize
	}
	if number < 1 {
		return res, fmt.Errorf("bad partition number %d", number)
	}
	head := make([]byte, 2*sectorSize)
	if _, err := disk.ReadAt(head, 0); err != nil {
		return res, fmt.Errorf("reading the partition table: %w", err)
	}
	lba0, lba1 := head[:sectorSize], head[sectorSize:]
	switch {
	case bytes.Equal(lba1[:8], []byte("EFI PART")):
		res.Table = proto.TableGPT
		return growGPT(disk, size, sectorSize, physSectorSize, number, lba1, res)
	case lba0[510] == 0x55 && lba0[511] == 0xaa:
		for i := 0; i < 4; i++ {
			if lba0[446+16*i+4] == byte(mbr.GPTProtective) {
				return res, errors.New("the disk has a protective MBR but no valid primary GPT header: repair the GPT first (sgdisk -v)")
			}
		}
		res.Table = proto.TableMBR
		return growMBR(disk, size, sectorSize, number, lba0, res)
	}
	return res, errNoTable
}

// checkGPTHeader refuses a primary GPT header that go-diskfs would
// mishandle (see the top of this file).
func checkGPTHeader(h []byte, sectorSize int) error {
	myLBA := binary.LittleEndian.Uint64(h[24:32])
	arrayLBA := binary.LittleEndian.Uint64(h[72:80])
	count := binary.LittleEndian.Uint32(h[80:84])
	entrySize := binary.LittleEndian.Uint32(h[84:88])
	switch {
	case myLBA != 1:
		return fmt.Errorf("the primary GPT header says it is at sector %d, not 1", myLBA)
	case entrySize != gptEntrySize:
		return fmt.Errorf("GPT partition entries of %d bytes (only %d-byte entries are rewritten)", entrySize, gptEntrySize)
	case count == 0 || count > gptMaxEntries:
		return fmt.Errorf("a GPT with %d partition entries (at most %d are rewritten)", count, gptMaxEntries)
	case count*gptEntrySize%uint32(sectorSize) != 0:
		return fmt.Errorf("a GPT partition array of %d entries does not fill whole %d-byte sectors", count, sectorSize)
	case arrayLBA != 2:
		return fmt.Errorf("the GPT partition array starts at sector %d, not 2", arrayLBA)
	}
	return nil
}

// noBackupFile hides the disk's size from go-diskfs so that a primary GPT
// failing its checks is an error instead of a silent read of the backup.
type noBackupFile struct{ *os.File }

func (noBackupFile) Seek(int64, int) (int64, error) {
	return 0, errors.New("the backup GPT is not read")
}

func growGPT(disk *os.File, size int64, sectorSize, physSectorSize, number int, hdr []byte, res proto.GrowPartitionResult) (proto.GrowPartitionResult, error) {
	if err := checkGPTHeader(hdr, sectorSize); err != nil {
		return res, err
	}
	count := int(binary.LittleEndian.Uint32(hdr[80:84]))
	oldArray := make([]byte, count*gptEntrySize)
	if _, err := disk.ReadAt(oldArray, 2*int64(sectorSize)); err != nil {
		return res, fmt.Errorf("reading the GPT partition array: %w", err)
	}
	t, err := gpt.Read(noBackupFile{disk}, sectorSize, physSectorSize)
	if err != nil {
		return res, fmt.Errorf("reading the GPT: %w", err)
	}
	var target *gpt.Partition
	for _, p := range t.Partitions {
		if p.Index == number {
			target = p
		}
	}
	if target == nil {
		return res, fmt.Errorf("partition %d is not in the GPT", number)
	}
	for _, p := range t.Partitions {
		if p != target && p.Start > target.Start {
			return res, fmt.Errorf("partition %d (%q, sectors %d-%d) follows partition %d on the disk: only the last partition can grow into the new space",
				p.Index, p.Name, p.Start, p.End, number)
		}
	}
	sectors := uint64(size) / uint64(sectorSize)
	oldSecondary := t.TotalSize()/uint64(sectorSize) - 1
	if oldSecondary >= sectors {
		return res, fmt.Errorf("the disk (%d sectors) is smaller than its GPT says (backup header at sector %d): a disk never shrinks here", sectors, oldSecondary)
	}
	res.Start, res.OldEnd = target.Start, target.End
	if oldSecondary != sectors-1 {
		// The backup header and array move to the new end; the last
		// usable sector moves with them.
		t.Resize(sectors * uint64(sectorSize))
		res.BackupMoved = true
	}
	newEnd := t.LastDataSector()
	if target.End > newEnd {
		return res, fmt.Errorf("partition %d ends at sector %d, beyond the GPT's last usable sector %d", number, target.End, newEnd)
	}
	res.NewEnd = newEnd
	if target.End == newEnd && !res.BackupMoved {
		return res, nil
	}
	target.End = newEnd
	target.Size = (target.End - target.Start + 1) * uint64(sectorSize)

	// go-diskfs would write a protective MBR of its own, its size cut to
	// 32 bits; updateProtectiveMBR keeps the one there.
	t.ProtectiveMBR = false
	rec := &writeRecorder{}
	if err := t.Write(rec, size); err != nil {
		return res, fmt.Errorf("encoding the GPT: %w", err)
	}
	if err := checkGPTRewrite(rec, hdr, oldArray, sectorSize, number); err != nil {
		return res, err
	}
	if err := t.Write(disk, size); err != nil {
		return res, fmt.Errorf("writing the GPT: %w", err)
	}
	if err := updateProtectiveMBR(disk, sectorSize, physSectorSize, oldSecondary, sectors); err != nil {
		return res, err
	}
	if err := disk.Sync(); err != nil {
		return res, fmt.Errorf("writing the partition table: %w", err)
	}
	// Read it back: the primary's checksums hold and the end is there.
	back, err := gpt.Read(noBackupFile{disk}, sectorSize, physSectorSize)
	if err != nil {
		return res, fmt.Errorf("reading back the GPT just written: %w", err)
	}
	for _, p := range back.Partitions {
		if p.Index == number && p.End != newEnd {
			return res, fmt.Errorf("the GPT read back ends partition %d at sector %d, not %d", number, p.End, newEnd)
		}
	}
	res.Changed = true
	return res, nil
}

// checkGPTRewrite compares the primary header and array go-diskfs would
// write with those on the disk: only the backup's location, the last
// usable sector, the partition's end and the checksums may change.
func checkGPTRewrite(rec *writeRecorder, oldHdr, oldArray []byte, sectorSize, number int) error {
	newHdr, ok := rec.at(int64(sectorSize), len(oldHdr))
	if !ok {
		return errors.New("go-diskfs did not write the primary GPT header where expected")
	}
	newArray, ok := rec.at(2*int64(sectorSize), len(oldArray))
	if !ok {
		return errors.New("go-diskfs did not write the primary GPT partition array where expected")
	}
	mask := func(b []byte, ranges ...[2]int) []byte {
		c := append([]byte(nil), b...)
		for _, r := range ranges {
			clear(c[r[0]:r[1]])
		}
		return c
	}
	hdrFields := [][2]int{{16, 20}, {32, 40}, {48, 56}, {88, 92}} // CRC, backup LBA, last usable, array CRC
	if !bytes.Equal(mask(oldHdr, hdrFields...), mask(newHdr, hdrFields...)) {
		return fmt.Errorf("refusing to rewrite this GPT: its header would change beyond the backup's location (byte %d differs)", firstDiff(mask(oldHdr, hdrFields...), mask(newHdr, hdrFields...)))
	}
	end := (number-1)*gptEntrySize + 40
	if !bytes.Equal(mask(oldArray, [2]int{end, end + 8}), mask(newArray, [2]int{end, end + 8})) {
		i := firstDiff(mask(oldArray, [2]int{end, end + 8}), mask(newArray, [2]int{end, end + 8}))
		return fmt.Errorf("refusing to rewrite this GPT: partition entry %d would change beyond its end sector (byte %d of the entry differs)", i/gptEntrySize+1, i%gptEntrySize)
	}
	return nil
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// updateProtectiveMBR makes a protective MBR's 0xEE entry that covered
// the old disk cover the new one (at most 2^32-1 sectors), leaving a
// hybrid MBR, its boot code and every other byte alone.
func updateProtectiveMBR(disk *os.File, sectorSize, physSectorSize int, oldSecondary, sectors uint64) error {
	// go-diskfs reads the MBR's 512 bytes at the start whatever the
	// sector size; its sizes are in the disk's logical sectors.
	t, err := mbr.Read(disk, sectorSize, physSectorSize)
	if err != nil {
		return nil // no MBR that go-diskfs reads: nothing to keep in step
	}
	covered := min(oldSecondary, mbrMaxSectors)
	for _, p := range t.Partitions {
		if p.Type == mbr.GPTProtective && p.Start == 1 && uint64(p.Size) >= covered {
			p.Size = uint32(min(sectors-1, mbrMaxSectors))
			if err := t.Write(disk, int64(sectors)*int64(sectorSize)); err != nil {
				return fmt.Errorf("writing the protective MBR: %w", err)
			}
			return nil
		}
	}
	return nil
}

func growMBR(disk *os.File, size int64, sectorSize, number int, lba0 []byte, res proto.GrowPartitionResult) (proto.GrowPartitionResult, error) {
	if sectorSize != 512 {
		return res, fmt.Errorf("an MBR on a disk of %d-byte sectors (only 512-byte sectors are rewritten)", sectorSize)
	}
	if number > 4 {
		return res, fmt.Errorf("partition %d is a logical partition of the MBR: grow its extended partition first, by hand", number)
	}
	t, err := mbr.Read(disk, sectorSize, sectorSize)
	if err != nil {
		return res, fmt.Errorf("reading the MBR: %w", err)
	}
	var target *mbr.Partition
	for _, p := range t.Partitions {
		if p.Index == number && p.Type != mbr.Empty {
			target = p
		}
	}
	if target == nil {
		return res, fmt.Errorf("partition %d is not in the MBR", number)
	}
	if isExtended(target.Type) {
		return res, fmt.Errorf("partition %d is the MBR's extended partition: growing it and its logical partitions is not supported", number)
	}
	for _, p := range t.Partitions {
		if p != target && p.Type != mbr.Empty && p.Start > target.Start {
			what := "partition"
			if isExtended(p.Type) {
				what = "extended partition"
			}
			return res, fmt.Errorf("%s %d (sectors %d-%d) follows partition %d on the disk: only the last partition can grow into the new space",
				what, p.Index, p.Start, uint64(p.Start)+uint64(p.Size)-1, number)
		}
	}
	sectors := uint64(size) / uint64(sectorSize)
	oldEnd := uint64(target.Start) + uint64(target.Size) - 1
	if target.Size == 0 || oldEnd >= sectors {
		return res, fmt.Errorf("partition %d (sectors %d-%d) does not fit the disk of %d sectors: a disk never shrinks here", number, target.Start, oldEnd, sectors)
	}
	newSize := sectors - uint64(target.Start)
	if newSize > mbrMaxSectors {
		return res, fmt.Errorf("an MBR partition holds at most 2^32-1 sectors (2 TiB with 512-byte sectors): partition %d cannot reach the end of a disk of %d sectors (choose a smaller size, or convert the disk to GPT)", number, sectors)
	}
	res.Start, res.OldEnd, res.NewEnd = uint64(target.Start), oldEnd, uint64(target.Start)+newSize-1
	if newSize <= uint64(target.Size) {
		res.NewEnd = oldEnd
		return res, nil
	}
	target.Size = uint32(newSize)
	target.EndHead, target.EndSector, target.EndCylinder = chs(res.NewEnd)

	rec := &writeRecorder{}
	if err := t.Write(rec, size); err != nil {
		return res, fmt.Errorf("encoding the MBR: %w", err)
	}
	newTable, ok := rec.at(446, 66)
	if !ok {
		return res, errors.New("go-diskfs did not write the MBR's partition entries where expected")
	}
	// Only the entry's end (CHS, bytes 5-7) and size (12-15) may change.
	e := 446 + 16*(number-1)
	want := append([]byte(nil), lba0[446:512]...)
	copy(want[e-446+5:e-446+8], newTable[e-446+5:e-446+8])
	copy(want[e-446+12:e-446+16], newTable[e-446+12:e-446+16])
	if !bytes.Equal(want, newTable) {
		return res, fmt.Errorf("refusing to rewrite this MBR: byte %d would change beyond partition %d's end", 446+firstDiff(want, newTable), number)
	}
	if err := t.Write(disk, size); err != nil {
		return res, fmt.Errorf("writing the MBR: %w", err)
	}
	if err := disk.Sync(); err != nil {
		return res, fmt.Errorf("writing the MBR: %w", err)
	}
	res.Changed = true
	return res, nil
}

func isExtended(t mbr.Type) bool {
	return t == mbr.ExtendedCHS || t == mbr.ExtendedLBA || t == mbr.LinuxExtended
}

// chs is a sector's cylinder/head/sector address as an MBR entry stores
// it, in the 255-head, 63-sector geometry fdisk assumes; past what CHS
// can address, the conventional maximum (1023, 254, 63).
func chs(lba uint64) (head, sector, cylinder byte) {
	const heads, perTrack = 255, 63
	c := lba / (heads * perTrack)
	h := lba / perTrack % heads
	s := lba%perTrack + 1
	if c > 1023 {
		c, h, s = 1023, 254, 63
	}
	return byte(h), byte(s) | byte(c>>2)&0xc0, byte(c)
}

// writeRecorder is a go-diskfs backend that only records what is written,
// so the table can be checked before it reaches the disk.
type writeRecorder struct {
	writes []recordedWrite
}

type recordedWrite struct {
	off  int64
	data []byte
}

var errRecorderOnly = errors.New("write recorder: writes only")

func (r *writeRecorder) WriteAt(p []byte, off int64) (int, error) {
	r.writes = append(r.writes, recordedWrite{off: off, data: append([]byte(nil), p...)})
	return len(p), nil
}

func (r *writeRecorder) ReadAt([]byte, int64) (int, error) { return 0, errRecorderOnly }
func (r *writeRecorder) Read([]byte) (int, error)          { return 0, errRecorderOnly }
func (r *writeRecorder) Seek(int64, int) (int64, error)    { return 0, errRecorderOnly }
func (r *writeRecorder) Stat() (fs.FileInfo, error)        { return nil, errRecorderOnly }
func (r *writeRecorder) Close() error                      { return nil }

// at is the last write of exactly n bytes at off.
func (r *writeRecorder) at(off int64, n int) ([]byte, bool) {
	for i := len(r.writes) - 1; i >= 0; i-- {
		if w := r.writes[i]; w.off == off && len(w.data) == n {
			return w.data, true
		}
	}
	return nil, false
}

var _ io.WriterAt = (*writeRecorder)(nil)
