package appliance

import (
	"context"
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

// dataDiskSize is the data disk's virtual size: sparse, only staged data
// uses space. Offsets on it are multiples of proto.DataAlign, as O_DIRECT
// reads in the guest need.
const dataDiskSize = 1 << 40

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
	d.next = alignUp(off+size, proto.DataAlign)
	if d.next >= dataDiskSize {
		d.err = errors.New("data disk full")
	}
	return StagedRange{off, size}, true, nil
}

// StagedStream writes a stream (a tar stream, which may itself stage large
// files with StageData meanwhile) straight onto the data disk, in parts:
// Cut ends a part, which the agent can read while the next is written.
// Each part gets a reservation of its own, so staging a large file between
// writes never breaks a part's contiguity. Not safe for concurrent use.
type StagedStream struct {
	s          *Session
	start, off int64
	end        int64 // end of the reservation; 0: none yet
	total      int64
	parts      int
}

// StagedPartMax is the most one part of a StagedStream may hold.
const StagedPartMax = 64 << 20

// NewStagedStream starts a stream on the data disk, attaching the disk
// first (once). ok is false when this session has no data disk.
func (s *Session) NewStagedStream(ctx context.Context) (w *StagedStream, ok bool) {
	if !s.dataDiskUsable(ctx) {
		return nil, false
	}
	return &StagedStream{s: s}, true
}

// Write appends p to the current part.
func (w *StagedStream) Write(p []byte) (int, error) {
	if w.end == 0 {
		if err := w.reserve(); err != nil {
			return 0, err
		}
	}
	if w.off+int64(len(p)) > w.end {
		return 0, fmt.Errorf("a staged stream part grew past %d MiB", StagedPartMax>>20)
	}
	n, err := w.s.data.file.WriteAt(p, w.off)
	w.off += int64(n)
	w.total += int64(n)
	if err != nil {
		return n, fmt.Errorf("staging on the data disk: %w", err)
	}
	return n, nil
}

func (w *StagedStream) reserve() error {
	d := &w.s.data
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.next+StagedPartMax > dataDiskSize {
		return errors.New("data disk full")
	}
	w.start, w.off, w.end = d.next, d.next, d.next+StagedPartMax
	d.next = w.end
	return nil
}

// Cut ends the current part and returns it; the next Write starts another.
func (w *StagedStream) Cut() StagedRange {
	r := StagedRange{w.start, w.off - w.start}
	w.start, w.off, w.end = 0, 0, 0
	w.parts++
	return r
}

// Done logs what the stream staged.
func (w *StagedStream) Done(took time.Duration) {
	w.s.verbosef("staged a %d MiB stream on the data disk in %d part(s), extracted as they came (%s in all)",
		w.total>>20, w.parts, took.Round(time.Millisecond))
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
		_ = unix.Fallocate(int(d.file.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, r.Offset, alignUp(r.Size, proto.DataAlign))
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
	mon, err := m.waitMonitor(ctx)
	if err != nil {
		return err
	}
	port := m.portsUsed
	node := fmt.Sprintf("data%d", port)
	file, raw := diskNodes(path, "raw", node+"-file", node, true, "")
	dev := virtioBlk{Driver: "virtio-blk-pci", Drive: node, Serial: serial, Bus: fmt.Sprintf("rp%d", port), ID: node + "-dev"}
	if err := hotplugDisk(mon, file, raw, dev); err != nil {
		return fmt.Errorf("hot-plugging the data disk: %w", err)
	}
	m.portsUsed++
	return nil
}

// waitMonitor returns the QMP monitor, waiting for it: QMP attaches in the
// background after a cold boot.
func (m *qemuMachine) waitMonitor(ctx context.Context) (*qmp.SocketMonitor, error) {
	mon := m.monitor()
	for deadline := time.Now().Add(20 * time.Second); mon == nil; mon = m.monitor() {
		if time.Now().After(deadline) {
			return nil, errors.New("QMP not connected")
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-m.done:
			return nil, ErrApplianceDied
		case <-time.After(5 * time.Millisecond):
		}
	}
	return mon, nil
}

func (m *qemuMachine) monitor() *qmp.SocketMonitor {
	m.qmpMu.Lock()
	defer m.qmpMu.Unlock()
	return m.qmp
}
