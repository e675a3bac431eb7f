package appliance

import (
	"context"

	"github.com/imgbake/imgbake/appliance/proto"
)

// GrowPartition makes partition number of disk (/dev/vda) end at the end
// of the disk, moving a GPT's backup there first, and tells the
// appliance's kernel its new size.
func (s *Session) GrowPartition(ctx context.Context, disk string, number int) (proto.GrowPartitionResult, error) {
	var res proto.GrowPartitionResult
	err := s.call(ctx, proto.OpGrowPartition, proto.GrowPartitionArgs{Disk: disk, Number: number}, nil, nil, &res)
	return res, err
}
