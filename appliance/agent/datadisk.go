package agent

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/imgbake/imgbake/appliance/proto"
)

// The host stages large files of a copy on a read-only data disk it
// hot-plugs on first use (see appliance/datadisk.go); tar headers then
// carry the data's place on that disk instead of the data.

const (
	dataChunkSize = 8 << 20
	dataDiskWait  = 20 * time.Second
)

// dataDisk opens the data disk once, waiting for the hot-plug to show it.
func (a *Agent) dataDisk() (*os.File, error) {
	a.dataMu.Lock()
	defer a.dataMu.Unlock()
	if a.dataFile != nil {
		return a.dataFile, nil
	}
	deadline := time.Now().Add(dataDiskWait)
	for {
		if dev := findDiskBySerial(proto.DataDiskSerial); dev != "" {
			// O_DIRECT: no page cache in the appliance for data read once.
			fd, err := unix.Open("/dev/"+dev, unix.O_RDONLY|unix.O_DIRECT|unix.O_CLOEXEC, 0)
			if err == unix.EINVAL {
				fd, err = unix.Open("/dev/"+dev, unix.O_RDONLY|unix.O_CLOEXEC, 0)
			}
			if err == nil {
				a.dataFile = os.NewFile(uintptr(fd), "/dev/"+dev)
				return a.dataFile, nil
			}
			if err != unix.ENOENT && err != unix.ENXIO {
				return nil, fmt.Errorf("opening the data disk /dev/%s: %w", dev, err)
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the data disk (serial %s) did not appear within %s", proto.DataDiskSerial, dataDiskWait)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// findDiskBySerial returns the block device (e.g. "vdb") with serial.
func findDiskBySerial(serial string) string {
	paths, _ := filepath.Glob("/sys/block/*/serial")
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err == nil && strings.TrimSpace(string(b)) == serial {
			return filepath.Base(filepath.Dir(p))
		}
	}
	return ""
}

// dataReader reads a range of the data disk in chunks, the next chunk
// being read (by DMA, O_DIRECT) while the caller uses the last one.
type dataReader struct {
	full chan dataChunk
	free chan []byte
	stop chan struct{}
	mem  []byte
	held []byte // buffer of the chunk the caller has
	rest []byte // Read: unread part of the held chunk
	err  error
}

type dataChunk struct {
	buf []byte
	n   int
	err error
}

// openData starts reading size bytes at off (a multiple of proto.DataAlign).
func (a *Agent) openData(off, size int64) (*dataReader, error) {
	if off < 0 || size < 0 || off%proto.DataAlign != 0 {
		return nil, fmt.Errorf("bad data disk range %d+%d", off, size)
	}
	disk, err := a.dataDisk()
	if err != nil {
		return nil, err
	}
	mem, err := dataBuffers()
	if err != nil {
		return nil, err
	}
	r := &dataReader{full: make(chan dataChunk, 2), free: make(chan []byte, 2), stop: make(chan struct{}), mem: mem}
	r.free <- mem[:dataChunkSize]
	r.free <- mem[dataChunkSize:]
	go func() {
		defer close(r.full)
		for done := int64(0); done < size; {
			var buf []byte
			select {
			case buf = <-r.free:
			case <-r.stop:
				return
			}
			want := min(int64(dataChunkSize), size-done)
			// Whole blocks for O_DIRECT; only want bytes are used.
			n, err := unix.Pread(int(disk.Fd()), buf[:(want+proto.DataAlign-1)/proto.DataAlign*proto.DataAlign], off+done)
			if err == nil && int64(n) < want {
				err = errors.New("short read")
			}
			r.full <- dataChunk{buf, int(min(int64(max(n, 0)), want)), err}
			if err != nil {
				return
			}
			done += want
		}
	}()
	return r, nil
}

// next returns the next chunk; it stays valid until the next call.
func (r *dataReader) next() ([]byte, error) {
	if r.err != nil {
		return nil, r.err
	}
	if r.held != nil {
		r.free <- r.held
		r.held = nil
	}
	c, ok := <-r.full
	switch {
	case !ok:
		r.err = io.EOF
	case c.err != nil:
		r.err = fmt.Errorf("reading the data disk: %w", c.err)
	default:
		r.held = c.buf
		return c.buf[:c.n], nil
	}
	return nil, r.err
}

// Read makes the range an io.Reader (a tar stream staged on the disk).
func (r *dataReader) Read(p []byte) (int, error) {
	for len(r.rest) == 0 {
		b, err := r.next()
		if err != nil {
			return 0, err
		}
		r.rest = b
	}
	n := copy(p, r.rest)
	r.rest = r.rest[n:]
	return n, nil
}

func (r *dataReader) Close() {
	close(r.stop)
	// The reader goroutine holds at most the two buffers: wait for it.
	for range r.full {
	}
	select {
	case dataBufs <- r.mem:
	default:
		unix.Munmap(r.mem)
	}
}

// dataBufs keeps the buffers of finished reads for the next ones (a tar
// stream and a large file in it are read at once): a fresh mapping costs
// the guest page faults and zeroing and, after a warm start, the host a
// copy-on-write fault per page.
var dataBufs = make(chan []byte, 2)

// dataBuffers returns two page-aligned chunk buffers (mmap), as O_DIRECT
// needs.
func dataBuffers() ([]byte, error) {
	select {
	case mem := <-dataBufs:
		return mem, nil
	default:
		return unix.Mmap(-1, 0, 2*dataChunkSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	}
}

// copyFromDataDisk writes the data disk range of a tar entry's PAX records
// to fd. Both sides use O_DIRECT where the filesystem allows it, so the data
// moves by DMA and the emulated CPU never copies it (about 3x faster under
// TCG than through the page cache).
func (a *Agent) copyFromDataDisk(fd int, offsetS, sizeS string) (int64, error) {
	off, err1 := strconv.ParseInt(offsetS, 10, 64)
	size, err2 := strconv.ParseInt(sizeS, 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bad data disk reference %q/%q", offsetS, sizeS)
	}
	r, err := a.openData(off, size)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	direct := setDirect(fd, true)
	var written int64
	for {
		data, err := r.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return written, err
		}
		if direct {
			// O_DIRECT writes whole blocks; the file's tail goes buffered.
			aligned := len(data) &^ (proto.DataAlign - 1)
			n, err := writeAll(fd, data[:aligned])
			written += int64(n)
			if err != nil {
				return written, err
			}
			data = data[aligned:]
			if len(data) > 0 {
				direct = !setDirect(fd, false)
			}
		}
		n, err := writeAll(fd, data)
		written += int64(n)
		if err != nil {
			return written, err
		}
	}
	if written != size {
		return written, errors.New("data disk copy ended early")
	}
	return written, nil
}

// setDirect turns O_DIRECT on or off for fd; it reports whether it worked.
func setDirect(fd int, on bool) bool {
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return false
	}
	if on {
		flags |= unix.O_DIRECT
	} else {
		flags &^= unix.O_DIRECT
	}
	_, err = unix.FcntlInt(uintptr(fd), unix.F_SETFL, flags)
	return err == nil
}
