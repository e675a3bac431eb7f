package proto

// Growing a partition into new space at the end of its (larger) disk.
const (
	// OpGrowPartition rewrites the partition table of an attached disk so
	// that partition Number ends at the end of the disk (a GPT's backup
	// header and partition array moved there first), then tells the
	// kernel the partition's new size. Only the last partition of the
	// disk can grow; shrinking is impossible (the end only moves out).
	OpGrowPartition = "grow_partition"
)

// GrowPartitionArgs name the disk (/dev/vda) and the partition number.
type GrowPartitionArgs struct {
	Disk   string `json:"disk"`
	Number int    `json:"number"`
}

// GrowPartitionResult says what the table looked like and what changed.
// Sectors are the disk's logical sectors.
type GrowPartitionResult struct {
	Table       string `json:"table"` // TableGPT or TableMBR
	SectorSize  int    `json:"sector_size"`
	Start       uint64 `json:"start"`   // the partition's first sector
	OldEnd      uint64 `json:"old_end"` // its last sector before
	NewEnd      uint64 `json:"new_end"` // and after
	BackupMoved bool   `json:"backup_moved,omitempty"`
	Changed     bool   `json:"changed"`
}

// Partition table kinds.
const (
	TableGPT = "gpt"
	TableMBR = "dos" // as sfdisk and blkid call it
)
