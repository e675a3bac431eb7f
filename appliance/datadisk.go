package appliance

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/digitalocean/go-qemu/qmp"
	"golang.org/x/sys/unix"

	"github.com/imgbake/imgbake/appliance/proto"
)

// Bulk data of a copy does not need to squeeze through the agent channel
// (about 50 MB/s under TCG, every byte copied by emulated instructions):
// the session keeps a sparse host file, hot-plugged read-only into the
// appliance on first use as a virtio disk, and stages large files in it
// with in-kernel copies. The tar stream then carries only the file's
// header with its place on that disk (proto.PAXDataOffset), and the agent
// reads the data from the disk with O_DIRECT. Staged ranges are never
// reused, so neither side can see stale data, and are punched out of the
// host file once the copy is done.

const (
	dataDiskSize  = 1 << 40 // virtual size: sparse, only staged data uses space
	dataDiskAlign = 1 << 12 // O_DIRECT reads in the guest need aligned offsets
)

// diskAttacher is what a machine needs for the data disk: hot-plugging a
// host file as a read-only raw disk with a serial.
type diskAttacher interface {
	attachReadOnly(ctx context.Context, path, serial string) error
}

// dataDisk is a session's staging disk.
type dataDisk struct {
	mu       sync.Mutex
	file     *os.File
	next     int64 // next free offset; ranges are never reused
	attached bool
	err      error // attaching failed: do not try again
}

// StagedRange is a file staged on the data disk.
type StagedRange struct{ Offset, Size int64 }

// StageData copies size bytes of f onto the session's data disk (attaching
// it first, once) and returns where they are, for a tar header's
// proto.PAXDataOffset record. ok is false when this session has no data
// disk (another backend, no free hot-plug port): the caller sends the data
// through the channel instead.
func (s *Session) StageData(ctx context.Context, f *os.File, size int64) (r StagedRange, ok bool, err error) {
	if !s.dataDiskUsable(ctx) {
		return r, false, nil
	}
	d := &s.data
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.err != nil { // full
		return r, false, nil
	}
	off := d.next
	if err := copyInto(d.file, off, f, size); err != nil {
		return r, false, err
	}
	d.next = alignUp(off+size, dataDiskAlign)
	if d.next >= dataDiskSize {
		d.err = errors.New("data disk full")
	}
	return StagedRange{off, size}, true, nil
}

// StageStream stages what write writes (a tar stream, which may itself
// stage large files with StageData) as one range of the data disk. ok is
// false when the session has no data disk; then write has not been called.
func (s *Session) StageStream(ctx context.Context, write func(io.Writer) error) (r StagedRange, ok bool, err error) {
	if !s.dataDiskUsable(ctx) {
		return r, false, nil
	}
	// Written to a temp file first: the staged range must be contiguous,
	// and write stages large files in the meantime.
	t := time.Now()
	tmp, err := os.CreateTemp(s.dir, "stream-")
	if err != nil {
		return r, false, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	// Buffered: a tar writer makes three small writes per file.
	bw := bufio.NewWriterSize(tmp, 1<<20)
	if err := write(bw); err != nil {
		return r, false, err
	}
	if err := bw.Flush(); err != nil {
		return r, false, err
	}
	fi, err := tmp.Stat()
	if err != nil {
		return r, false, err
	}
	r, ok, err = s.StageData(ctx, tmp, fi.Size())
	s.verbosef("staged a %d MiB stream on the data disk in %s", fi.Size()>>20, time.Since(t).Round(time.Millisecond))
	return r, ok, err
}

// dataDiskUsable attaches the data disk if needed and says whether there
// is one.
func (s *Session) dataDiskUsable(ctx context.Context) bool {
	att, can := s.machine.(diskAttacher)
	if !can {
		return false
	}
	d := &s.data
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.err == nil && !d.attached {
		if err := s.attachDataDisk(ctx, att); err != nil {
			d.err = err
			s.verbosef("no data disk for bulk copies (%v): copying through the channel", err)
		}
	}
	return d.err == nil
}

// ReleaseData frees staged ranges on the host once the agent has read them.
func (s *Session) ReleaseData(rs []StagedRange) {
	d := &s.data
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.file == nil {
		return
	}
	for _, r := range rs {
		_ = unix.Fallocate(int(d.file.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, r.Offset, alignUp(r.Size, dataDiskAlign))
	}
}

func (s *Session) attachDataDisk(ctx context.Context, att diskAttacher) error {
	d := &s.data
	path := filepath.Join(s.dir, "data.disk")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if err := f.Truncate(dataDiskSize); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	t := time.Now()
	if err := att.attachReadOnly(ctx, path, proto.DataDiskSerial); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	s.verbosef("data disk for bulk copies attached in %s", time.Since(t).Round(time.Millisecond))
	d.file, d.attached = f, true
	return nil
}

// copyInto copies size bytes from the start of src to dst at off, in the
// kernel where it can.
func copyInto(dst *os.File, off int64, src *os.File, size int64) error {
	var done int64
	for done < size {
		inOff, outOff := done, off+done
		n, err := unix.CopyFileRange(int(src.Fd()), &inOff, int(dst.Fd()), &outOff, int(min(size-done, 1<<30)), 0)
		if err != nil {
			if done == 0 && (err == unix.EXDEV || err == unix.EINVAL || err == unix.ENOSYS || err == unix.EOPNOTSUPP) {
				return copyPlain(dst, off, src, size)
			}
			return fmt.Errorf("staging %s: %w", src.Name(), err)
		}
		if n == 0 {
			return fmt.Errorf("staging %s: file shrank while copying", src.Name())
		}
		done += int64(n)
	}
	return nil
}

func copyPlain(dst *os.File, off int64, src *os.File, size int64) error {
	n, err := io.Copy(io.NewOffsetWriter(dst, off), io.NewSectionReader(src, 0, size))
	if err != nil {
		return fmt.Errorf("staging %s: %w", src.Name(), err)
	}
	if n != size {
		return fmt.Errorf("staging %s: file shrank while copying", src.Name())
	}
	return nil
}

func alignUp(n, a int64) int64 { return (n + a - 1) / a * a }

// attachReadOnly hot-plugs path as a read-only raw virtio disk on a free
// root port.
func (m *qemuMachine) attachReadOnly(ctx context.Context, path, serial string) error {
	m.hotplugMu.Lock()
	defer m.hotplugMu.Unlock()
	if m.portsUsed >= hotplugPorts {
		return errors.New("no free hot-plug port")
	}
	// QMP attaches in the background after a cold boot.
	mon := m.monitor()
	for deadline := time.Now().Add(10 * time.Second); mon == nil; mon = m.monitor() {
		if time.Now().After(deadline) {
			return errors.New("QMP not connected")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-m.done:
			return ErrApplianceDied
		case <-time.After(5 * time.Millisecond):
		}
	}
	port := m.portsUsed
	node := fmt.Sprintf("data%d", port)
	cmds := []map[string]any{
		{"execute": "blockdev-add", "arguments": map[string]any{"driver": "file", "filename": path, "node-name": node + "-file", "read-only": true}},
		{"execute": "blockdev-add", "arguments": map[string]any{"driver": "raw", "file": node + "-file", "node-name": node, "read-only": true}},
		{"execute": "device_add", "arguments": map[string]any{"driver": "virtio-blk-pci", "drive": node, "serial": serial,
			"bus": fmt.Sprintf("rp%d", port), "id": node + "-dev"}},
	}
	for _, c := range cmds {
		b, _ := json.Marshal(c)
		if _, err := runQMP(mon, string(b)); err != nil {
			return fmt.Errorf("hot-plugging the data disk: %w", err)
		}
	}
	m.portsUsed++
	return nil
}

func (m *qemuMachine) monitor() *qmp.SocketMonitor {
	m.qmpMu.Lock()
	defer m.qmpMu.Unlock()
	return m.qmp
}
