package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/imgbake/imgbake/appliance/proto"
)

func (a *Agent) registerGrowOps(s *server) {
	s.handle(proto.OpGrowPartition, a.handleGrowPartition)
}

// growDisk is a whole disk of the appliance (virtio-blk or SCSI).
var growDisk = regexp.MustCompile(`^/dev/(vd|sd)[a-z]+$`)

func (a *Agent) handleGrowPartition(_ context.Context, _ *stream, raw json.RawMessage) (any, error) {
	args, err := decode[proto.GrowPartitionArgs](raw)
	if err != nil {
		return nil, err
	}
	if !growDisk.MatchString(args.Disk) {
		return nil, fmt.Errorf("grow_partition: %q is not a disk of the appliance", args.Disk)
	}
	if a.readOnly {
		return nil, errors.New("grow_partition: the image is attached read-only")
	}
	res, err := growPartition(args.Disk, args.Number)
	if err != nil {
		return nil, fmt.Errorf("grow_partition %s%d: %w", args.Disk, args.Number, err)
	}
	return res, nil
}

// growPartition rewrites the table of the block device disk and makes the
// kernel's idea of the partition match it.
func growPartition(disk string, number int) (proto.GrowPartitionResult, error) {
	f, err := os.OpenFile(disk, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return proto.GrowPartitionResult{}, err
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return proto.GrowPartitionResult{}, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return proto.GrowPartitionResult{}, errors.New("not a block device")
	}
	logical, err := unix.IoctlGetInt(int(f.Fd()), unix.BLKSSZGET)
	if err != nil {
		return proto.GrowPartitionResult{}, fmt.Errorf("logical sector size: %w", err)
	}
	physical, err := unix.IoctlGetInt(int(f.Fd()), unix.BLKPBSZGET)
	if err != nil {
		return proto.GrowPartitionResult{}, fmt.Errorf("physical sector size: %w", err)
	}
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return proto.GrowPartitionResult{}, fmt.Errorf("disk size: %w", err)
	}
	res, err := growPartitionTable(f, size, logical, physical, number)
	if err != nil {
		return res, err
	}
	// Always, so that a table grown by an earlier, interrupted run reaches
	// the kernel too; the partition may be mounted.
	if err := blkpgResize(f, number, int64(res.Start)*int64(logical), int64(res.NewEnd-res.Start+1)*int64(logical)); err != nil {
		return res, fmt.Errorf("telling the kernel partition %d's new size: %w", number, err)
	}
	return res, nil
}

// blkpgResize is BLKPG_RESIZE_PARTITION: the kernel's partition number of
// disk, starting at start bytes, is length bytes long from now on.
func blkpgResize(disk *os.File, number int, start, length int64) error {
	p := unix.BlkpgPartition{Start: start, Length: length, Pno: int32(number)}
	arg := unix.BlkpgIoctlArg{Op: unix.BLKPG_RESIZE_PARTITION, Datalen: int32(unsafe.Sizeof(p)), Data: (*byte)(unsafe.Pointer(&p))}
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, disk.Fd(), unix.BLKPG, uintptr(unsafe.Pointer(&arg)))
	if errno != 0 {
		return errno
	}
	return nil
}
