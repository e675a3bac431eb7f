package appliance

import (
	"context"
	"errors"
	"fmt"

	"github.com/imgbake/imgbake/appliance/proto"
)

// ErrNoSnapshots is returned by SnapshotDisk on a machine that cannot take
// external snapshots (the in-process test backend).
var ErrNoSnapshots = errors.New("this appliance backend cannot snapshot disks")

// Freeze syncs and freezes every filesystem mounted from the image, so
// its disks are consistent until Thaw; writes in the guest block meanwhile.
func (s *Session) Freeze(ctx context.Context) ([]string, error) {
	var res proto.FreezeResult
	err := s.call(ctx, proto.OpFreeze, struct{}{}, nil, nil, &res)
	return res.Mountpoints, err
}

// Thaw undoes Freeze.
func (s *Session) Thaw(ctx context.Context) error {
	var res proto.FreezeResult
	return s.call(ctx, proto.OpThaw, struct{}{}, nil, nil, &res)
}

// diskSnapshotter is a machine that can put a new qcow2 overlay on top of
// one of its disks while it runs.
type diskSnapshotter interface {
	snapshotDisk(ctx context.Context, disk int, overlay string) error
}

// SnapshotDisk makes overlay (an existing, empty qcow2 file whose header
// names the current top of the disk's chain as its backing file, with its
// format) the disk's new active layer: from now on the guest writes go
// there and the old top is left as it is. Freeze first, so the old top
// holds consistent filesystems.
func (s *Session) SnapshotDisk(ctx context.Context, disk int, overlay string) error {
	sn, ok := s.machine.(diskSnapshotter)
	if !ok {
		return ErrNoSnapshots
	}
	return sn.snapshotDisk(ctx, disk, overlay)
}

func (m *qemuMachine) snapshotDisk(ctx context.Context, disk int, overlay string) error {
	m.hotplugMu.Lock()
	defer m.hotplugMu.Unlock()
	mon, err := m.waitMonitor(ctx)
	if err != nil {
		return err
	}
	if m.snapshots == nil {
		m.snapshots = map[int]string{}
	}
	top, ok := m.snapshots[disk]
	if !ok {
		top = fmt.Sprintf("disk%d", disk)
	}
	m.snapCount++
	node := fmt.Sprintf("snap%d-%d", disk, m.snapCount)
	if err := blockdevAdd(mon, blockdevNode{Driver: "file", Filename: overlay, NodeName: node + "-file", Discard: "unmap"}); err != nil {
		return fmt.Errorf("snapshot of disk %d: %w", disk, err)
	}
	if err := runRaw(mon, "blockdev-add", blockdevOverlay{Driver: "qcow2", File: node + "-file", NodeName: node}); err != nil {
		return fmt.Errorf("snapshot of disk %d: %w", disk, err)
	}
	if err := blockdevSnapshot(mon, top, node); err != nil {
		return fmt.Errorf("snapshot of disk %d: %w", disk, err)
	}
	m.snapshots[disk] = node
	return nil
}

// Trim discards the free space of every filesystem mounted writable from
// the image (zeroing it where a filesystem cannot discard), so that an
// export of the disks holds only used blocks.
func (s *Session) Trim(ctx context.Context) (proto.TrimResult, error) {
	var res proto.TrimResult
	err := s.call(ctx, proto.OpTrim, struct{}{}, nil, nil, &res)
	return res, err
}
