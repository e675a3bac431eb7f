package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/imgbake/imgbake/appliance/proto"
)

func (a *Agent) registerResumeOps(s *server) {
	s.handle(proto.OpResume, a.handleResume)
}

// handleResume fixes what a snapshot restore leaves stale: the wall clock
// and the kernel's random state.
func (a *Agent) handleResume(_ context.Context, _ *stream, raw json.RawMessage) (any, error) {
	args, err := decode[proto.ResumeArgs](raw)
	if err != nil {
		return nil, err
	}
	if !a.pid1 {
		return struct{}{}, nil // in-process tests: never touch the host's clock
	}
	ts := unix.NsecToTimespec(args.UnixNano)
	if err := unix.ClockSettime(unix.CLOCK_REALTIME, &ts); err != nil {
		return nil, fmt.Errorf("resume: setting the clock: %w", err)
	}
	if len(args.Entropy) > 0 {
		if err := addEntropy(args.Entropy); err != nil {
			return nil, fmt.Errorf("resume: reseeding the RNG: %w", err)
		}
	}
	if args.FreshNode > 0 {
		if err := preferNode(args.FreshNode); err != nil {
			return nil, fmt.Errorf("resume: preferring memory of NUMA node %d: %w", args.FreshNode, err)
		}
	}
	return struct{}{}, nil
}

// preferNode makes every thread of the agent, and so every process it
// starts, allocate from node first (MPOL_PREFERRED: other nodes when it is
// full). The policy is per thread; new threads and children inherit it.
func preferNode(node int) error {
	const mpolPreferred = 1
	if node >= 64 {
		return fmt.Errorf("node %d out of range", node)
	}
	mask := uint64(1) << node
	// maxnode counts one more than the mask's bits (the kernel's off-by-one).
	_, _, errno := syscall.AllThreadsSyscall(unix.SYS_SET_MEMPOLICY, mpolPreferred, uintptr(unsafe.Pointer(&mask)), 65)
	if errno != 0 {
		return errno
	}
	return nil
}

// addEntropy mixes host randomness into the kernel pool and credits it
// (RNDADDENTROPY), which also reseeds the CRNG that getrandom() uses.
func addEntropy(b []byte) error {
	f, err := os.OpenFile("/dev/urandom", os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	// struct rand_pool_info { int entropy_count; int buf_size; __u32 buf[]; }
	buf := make([]byte, 8+len(b))
	*(*int32)(unsafe.Pointer(&buf[0])) = int32(len(b) * 8)
	*(*int32)(unsafe.Pointer(&buf[4])) = int32(len(b))
	copy(buf[8:], b)
	const rndAddEntropy = 0x40085203
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), rndAddEntropy, uintptr(unsafe.Pointer(&buf[0]))); errno != 0 {
		// Without the privilege to credit, mixing still changes the state.
		if _, err := f.Write(b); err != nil {
			return errors.Join(errno, err)
		}
	}
	// Force a reseed of the CRNG now rather than at its next interval.
	const rndReseedCRNG = 0x5207
	_, _, _ = unix.Syscall(unix.SYS_IOCTL, f.Fd(), rndReseedCRNG, 0)
	return nil
}

// waitForDisks waits until n virtio disks exist (hot-plugged after a
// snapshot restore), with their partitions scanned.
func waitForDisks(n int, limit time.Duration) error {
	if n <= 0 {
		return nil
	}
	deadline := time.Now().Add(limit)
	for {
		ents, _ := os.ReadDir("/sys/block")
		have := 0
		for _, e := range ents {
			if !strings.HasPrefix(e.Name(), "vd") {
				continue
			}
			size, err := os.ReadFile(filepath.Join("/sys/block", e.Name(), "size"))
			if err == nil && strings.TrimSpace(string(size)) != "0" {
				if _, err := os.Stat("/dev/" + e.Name()); err == nil {
					have++
				}
			}
		}
		if have >= n {
			settlePartitions()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waited %s for %d disk(s), found %d", limit, n, have)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
