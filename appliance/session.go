package appliance

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/imgbake/imgbake/appliance/proto"
)

// Session is one running appliance and the channel to its agent. Every
// operation is one request on the already-booted VM.
type Session struct {
	machine Machine
	conn    net.Conn
	dir     string
	wmu     sync.Mutex

	mu       sync.Mutex
	streams  map[uint32]*clientStream
	nextID   uint32
	dead     error // set once the channel is gone
	readyCh  chan proto.Ready
	closed   bool
	verbosef func(format string, args ...any)
	disks    int // attached disks: the agent waits for them when mounting
	data     dataDisk

	// Ready is what the agent reported when it came up.
	Ready proto.Ready
	// Timings of the start, for -v and benchmarks.
	Timings Timings
}

// Timings break down how the appliance start was spent.
type Timings struct {
	Build       time.Duration // appliance build or cache lookup
	QEMUStarted time.Duration // fork/exec of qemu and channel connect
	Ready       time.Duration // agent ready (from Start)
	GuestUptime time.Duration // guest kernel uptime when the agent was ready
	Warm        bool          // restored from a snapshot rather than booted
}

var boots atomic.Int64

// Boots counts appliance VMs started by this process (tests use it to prove
// that a whole recipe shares one boot).
func Boots() int64 { return boots.Load() }

type config struct {
	backend  Backend
	disks    []Disk
	memoryMB int
	cpus     int
	accel    string
	timeout  time.Duration
	append   string
	network  bool
	warm     bool
	dataDisk bool
	verbosef func(format string, args ...any)
}

// Option configures Start.
type Option func(*config)

// WithDisk attaches an image with an explicit format.
func WithDisk(path, format string, readOnly bool) Option {
	return func(c *config) { c.disks = append(c.disks, Disk{Path: path, Format: format, ReadOnly: readOnly}) }
}

// WithBackend selects the VM backend (default: QEMU).
func WithBackend(b Backend) Option { return func(c *config) { c.backend = b } }

// WithNetwork gives the appliance user-mode networking; the agent brings
// it up only when asked (Session.NetworkUp).
func WithNetwork(on bool) Option { return func(c *config) { c.network = on } }

// WithWarm enables (the default) or disables warm start from a saved
// appliance; $IMGBAKE_COLD=1 disables it too.
func WithWarm(on bool) Option { return func(c *config) { c.warm = on } }

// WithDataDisk enables (the default) or disables the data disk for bulk
// copies (datadisk.go); $IMGBAKE_DATA_DISK=0 disables it too, and copies
// then go through the agent channel.
func WithDataDisk(on bool) Option { return func(c *config) { c.dataDisk = on } }

// WithMemory sets the appliance RAM in MiB (default 512).
func WithMemory(mb int) Option { return func(c *config) { c.memoryMB = mb } }

// WithCPUs sets the appliance's vCPU count (default 2).
func WithCPUs(n int) Option { return func(c *config) { c.cpus = n } }

// WithBootTimeout bounds the wait for the agent (default 120 s; TCG is slow).
func WithBootTimeout(d time.Duration) Option { return func(c *config) { c.timeout = d } }

// WithKernelArgs appends to the kernel command line.
func WithKernelArgs(s string) Option { return func(c *config) { c.append = s } }

// WithVerbose receives progress messages.
func WithVerbose(f func(format string, args ...any)) Option {
	return func(c *config) { c.verbosef = f }
}

// kernelCmdline is tuned for TCG: no console chatter, no probing of legacy
// devices we do not have, panic straight to power-off. highres=off keeps
// timers at jiffy resolution: the agent's Go runtime (sysmon) sleeps for
// 20 µs at a time while busy, and every such sleep armed a local APIC
// timer that QEMU emulates through its main loop (about 2,000 timer
// interrupts a second); copying 7,000 files took 16% less time and CPU
// without them, and small steps did not get slower. init_on_alloc=0: the
// Debian kernel zeroes every page it allocates (hardening), page cache
// pages included, which the emulated CPU pays for byte by byte: 12% of the
// guest's busy time when copying a source tree in. The appliance runs one
// agent and the image's tools and enforces nothing, so memory cgroup
// accounting, syscall audit, AppArmor hooks and the per-syscall stack
// offset are work without use: together 7% off copying 7,000 files.
const kernelCmdline = "console=ttyS0 quiet loglevel=3 panic=-1 oops=panic no_timer_check " +
	"i8042.noaux i8042.nomux i8042.nopnp i8042.nokbd 8250.nr_uarts=1 cryptomgr.notests " +
	"random.trust_cpu=on mitigations=off nowatchdog rcupdate.rcu_expedited=1 tsc=reliable highres=off init_on_alloc=0 " +
	"cgroup_disable=memory audit=0 apparmor=0 randomize_kstack_offset=off"

// Start boots the appliance, waits for its agent and returns the session.
// The caller must Close (orderly) or Kill it; both reap qemu. With the
// QEMU backend it restores a saved, already booted appliance when it can
// (see warm.go) and boots cold otherwise.
func Start(ctx context.Context, app *Appliance, opts ...Option) (*Session, error) {
	cfg := config{backend: &QEMU{}, memoryMB: 512, timeout: 120 * time.Second,
		verbosef: func(string, ...any) {}, warm: os.Getenv("IMGBAKE_COLD") != "1", dataDisk: os.Getenv("IMGBAKE_DATA_DISK") != "0"}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.accel == "" {
		var note string
		cfg.accel, note = ResolveAccel(ctx, app.Kernel.Image)
		if note != "" {
			cfg.verbosef("%s", note)
		}
	}
	spec := MachineSpec{Kernel: app.Kernel.Image, Initramfs: app.Initramfs, MemoryMB: cfg.memoryMB, CPUs: cfg.cpus,
		Disks: cfg.disks, Accel: cfg.accel, Network: cfg.network, Append: strings.TrimSpace(kernelCmdline + " " + cfg.append)}
	if q, ok := cfg.backend.(*QEMU); ok && cfg.warm && len(cfg.disks) <= hotplugPorts {
		s, err := startWarm(ctx, q, app, spec, cfg)
		if err == nil {
			return s, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		cfg.verbosef("warm start failed (%v); booting cold", err)
	}
	return startCold(ctx, spec, cfg)
}

func startCold(ctx context.Context, spec MachineSpec, cfg config) (*Session, error) {
	t0 := time.Now()
	dir, err := PrivateDir("vm")
	if err != nil {
		return nil, err
	}
	spec.Dir = dir
	cfg.verbosef("starting appliance (%s, %s, %d MiB, cold boot)", cfg.backend.Name(), cfg.accel, cfg.memoryMB)
	m, err := cfg.backend.Start(ctx, spec)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	boots.Add(1)
	return newSession(ctx, m, dir, t0, cfg, len(spec.Disks))
}

// startWarm restores the saved appliance (saving it first if there is no
// snapshot yet) and hot-plugs the disks. On failure the snapshot is
// deleted, so the next start saves a fresh one.
func startWarm(ctx context.Context, q *QEMU, app *Appliance, spec MachineSpec, cfg config) (*Session, error) {
	path, err := q.snapshotFile(app, spec)
	if err != nil {
		return nil, err
	}
	waiting := func() { cfg.verbosef("waiting for another start saving the appliance for warm starts") }
	if _, err := saveOnce(ctx, path, waiting, func() error {
		t := time.Now()
		cfg.verbosef("saving a booted appliance for warm starts (once)")
		removeLegacySnapshots(app.Dir)
		if err := q.saveSnapshot(ctx, spec, path); err != nil {
			return fmt.Errorf("saving the snapshot: %w", err)
		}
		size, _ := snapshotUsage(path)
		cfg.verbosef("saved %s (%d MiB) in %s", filepath.Base(path), size>>20, time.Since(t).Round(time.Millisecond))
		return nil
	}); err != nil {
		return nil, err
	}
	t0 := time.Now()
	dir, err := PrivateDir("vm")
	if err != nil {
		return nil, err
	}
	spec.Dir = dir
	cfg.verbosef("starting appliance (qemu, %s, %d MiB, warm: restoring %s)", cfg.accel, cfg.memoryMB, filepath.Base(path))
	m, err := q.restore(ctx, spec, path)
	if err != nil {
		os.RemoveAll(dir)
		removeSnapshot(path)
		return nil, err
	}
	boots.Add(1)
	cfg.verbosef("restored: %s", strings.Join(m.phases, ", "))
	s, err := newSession(ctx, m, dir, t0, cfg, len(spec.Disks))
	if err != nil {
		removeSnapshot(path)
		return nil, err
	}
	s.Timings.Warm = true
	// The restored guest's clock and random state are those of the save.
	entropy := make([]byte, 64)
	if _, err := rand.Read(entropy); err != nil {
		s.Kill()
		return nil, err
	}
	resume := proto.ResumeArgs{UnixNano: time.Now().UnixNano(), Entropy: entropy}
	if _, fresh := warmSplit(cfg.memoryMB); fresh > 0 {
		resume.FreshNode = warmFreshID
	}
	if err := s.call(ctx, proto.OpResume, resume, nil, nil, nil); err != nil {
		s.Kill()
		removeSnapshot(path)
		return nil, fmt.Errorf("resuming the restored agent: %w", err)
	}
	return s, nil
}

// newSession waits for the agent on a started machine.
func newSession(ctx context.Context, m Machine, dir string, t0 time.Time, cfg config, disks int) (*Session, error) {
	s := &Session{machine: m, conn: m.Channel(), dir: dir, streams: map[uint32]*clientStream{},
		readyCh: make(chan proto.Ready, 1), verbosef: cfg.verbosef, disks: disks}
	if !cfg.dataDisk {
		s.data.err = errors.New("data disk disabled")
	}
	s.Timings.QEMUStarted = time.Since(t0)
	go s.readLoop()
	timer := time.NewTimer(cfg.timeout)
	defer timer.Stop()
	var err error
	select {
	case r := <-s.readyCh:
		s.Ready = r
		s.Timings.Ready = time.Since(t0)
		s.Timings.GuestUptime = time.Duration(r.UptimeSec * float64(time.Second))
		cfg.verbosef("appliance ready in %s (guest kernel %s, uptime %.2fs, %d modules)",
			s.Timings.Ready.Round(time.Millisecond), r.Kernel, r.UptimeSec, r.Modules)
		return s, nil
	case <-m.Done():
		err = fmt.Errorf("%w before its agent was ready%s", ErrApplianceDied, s.consoleTail())
	case <-ctx.Done():
		err = ctx.Err()
	case <-timer.C:
		err = fmt.Errorf("the appliance did not become ready within %s%s", cfg.timeout, s.consoleTail())
	}
	s.Kill()
	return nil, err
}

// consoleTail returns the last lines of the guest console for error messages.
func (s *Session) consoleTail() string {
	var out string
	if d := s.machine.Diagnostics(); d != "" {
		out = "; qemu: " + d
	}
	b, _ := os.ReadFile(s.machine.ConsoleLog())
	if t := strings.TrimSpace(string(b)); t != "" {
		out += "; console: " + lastLines(t, 8)
	}
	return out
}

func (s *Session) readLoop() {
	fr := proto.NewReader(bufio.NewReaderSize(s.conn, 1<<20))
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			select {
			case <-s.machine.Done():
				err = ErrApplianceDied
			case <-time.After(2 * time.Second):
				// The channel failed but qemu lives on: treat it as dead too.
				if !errors.Is(err, net.ErrClosed) {
					err = fmt.Errorf("agent channel: %w", err)
				}
			}
			s.fail(err)
			return
		}
		if f.Stream == 0 {
			if f.Type == proto.TReady {
				var r proto.Ready
				if json.Unmarshal(f.Payload, &r) == nil {
					select {
					case s.readyCh <- r:
					default:
					}
				}
			}
			continue
		}
		s.mu.Lock()
		st := s.streams[f.Stream]
		s.mu.Unlock()
		if st != nil {
			st.push(f)
		}
	}
}

func (s *Session) fail(err error) {
	s.mu.Lock()
	if s.dead == nil {
		s.dead = err
	}
	streams := s.streams
	s.streams = map[uint32]*clientStream{}
	s.mu.Unlock()
	for _, st := range streams {
		st.fail(err)
	}
}

func (s *Session) send(f proto.Frame) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return proto.WriteFrame(s.conn, f)
}

// sendBytes writes already encoded frames in one write.
func (s *Session) sendBytes(frames []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_, err := s.conn.Write(frames)
	return err
}

// smallInput returns the whole of r when r says it holds at most one
// chunk (strings.Reader, bytes.Reader, bytes.Buffer), so it can go out
// with its call.
func smallInput(r io.Reader) ([]byte, bool, error) {
	l, ok := r.(interface{ Len() int })
	if !ok || l.Len() > proto.ChunkSize {
		return nil, false, nil
	}
	b, err := io.ReadAll(io.LimitReader(r, proto.ChunkSize+1))
	if err != nil {
		return nil, false, err
	}
	if len(b) > proto.ChunkSize {
		// Len lied (a reader that grew): what was read cannot be put back.
		return nil, false, fmt.Errorf("input grew past %d bytes while being sent", proto.ChunkSize)
	}
	return b, true, nil
}

// clientStream queues frames for one request without bound, so the reader
// goroutine never blocks on a slow consumer (which could deadlock the
// channel for everyone).
type clientStream struct {
	id     uint32
	mu     sync.Mutex
	queue  []proto.Frame
	err    error
	notify chan struct{}
}

func (st *clientStream) push(f proto.Frame) {
	st.mu.Lock()
	st.queue = append(st.queue, f)
	st.mu.Unlock()
	select {
	case st.notify <- struct{}{}:
	default:
	}
}

func (st *clientStream) fail(err error) {
	st.mu.Lock()
	st.err = err
	st.mu.Unlock()
	select {
	case st.notify <- struct{}{}:
	default:
	}
}

func (st *clientStream) next(ctx context.Context) (proto.Frame, error) {
	for {
		st.mu.Lock()
		if len(st.queue) > 0 {
			f := st.queue[0]
			st.queue[0] = proto.Frame{}
			st.queue = st.queue[1:]
			st.mu.Unlock()
			return f, nil
		}
		err := st.err
		st.mu.Unlock()
		if err != nil {
			return proto.Frame{}, err
		}
		select {
		case <-st.notify:
		case <-ctx.Done():
			return proto.Frame{}, ctx.Err()
		}
	}
}

// RemoteError is an operation that failed inside the appliance.
type RemoteError struct {
	Op    string
	Msg   string
	Errno string
}

func (e *RemoteError) Error() string { return e.Msg }

// Is lets callers test errors.Is(err, syscall.ENOSPC) and friends.
func (e *RemoteError) Is(target error) bool {
	var errno syscall.Errno
	if errors.As(target, &errno) {
		return proto.ErrnoIs(e.Errno, errno)
	}
	if target == os.ErrNotExist {
		return proto.ErrnoIs(e.Errno, syscall.ENOENT)
	}
	return false
}

// call runs one operation. in, if set, is streamed as TData then TEOF;
// every other frame before the TResult goes to out.
func (s *Session) call(ctx context.Context, op string, args any, in io.Reader, out func(proto.Frame) error, result any) error {
	return s.callStream(ctx, op, args, in, out, result, callOptions{})
}

// callOptions adapt a call to interactive use.
type callOptions struct {
	// interactive: forward input as soon as any arrives (keystrokes), and
	// do not wait for the input to end once the result is in.
	interactive bool
	// resize: each value is sent to the agent as a TControl frame.
	resize <-chan proto.Winsize
	// inputOptional: once the result is in, the rest of the input does
	// not matter (a command that exited; as ssh does, do not wait for the
	// caller's stdin to end).
	inputOptional bool
	// streaming: forward input as soon as any arrives, in large frames
	// (requests to a long-lived command).
	streaming bool
}

func (s *Session) callStream(ctx context.Context, op string, args any, in io.Reader, out func(proto.Frame) error, result any, opts callOptions) error {
	var raw json.RawMessage
	if args != nil {
		b, err := json.Marshal(args)
		if err != nil {
			return err
		}
		raw = b
	}
	payload, err := json.Marshal(proto.Call{Op: op, Args: raw})
	if err != nil {
		return err
	}
	st := &clientStream{notify: make(chan struct{}, 1)}
	s.mu.Lock()
	if s.dead != nil {
		err := s.dead
		s.mu.Unlock()
		return err
	}
	s.nextID++
	if s.nextID == 0 {
		s.nextID = 1
	}
	st.id = s.nextID
	s.streams[st.id] = st
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.streams, st.id)
		s.mu.Unlock()
	}()
	request := proto.AppendFrame(nil, proto.Frame{Stream: st.id, Type: proto.TCall, Payload: payload})
	// Input known to be small (a write step's content) goes in the same
	// write as the call: under TCG every write to the channel wakes the
	// guest, and one wake-up for the request is ~0.6 ms cheaper than three.
	if in != nil && !opts.interactive && !opts.streaming {
		data, ok, err := smallInput(in)
		if err != nil {
			return err
		}
		if ok {
			if len(data) > 0 {
				request = proto.AppendFrame(request, proto.Frame{Stream: st.id, Type: proto.TData, Payload: data})
			}
			request = proto.AppendFrame(request, proto.Frame{Stream: st.id, Type: proto.TEOF})
			in = nil
		}
	}
	if callTrace != nil {
		callTrace(op, raw)
	}
	err = s.sendBytes(request)
	// The request may hold volume keys (OpMount, OpProbe): no copy of it
	// outlives the send.
	clear(request)
	clear(payload)
	clear(raw)
	if err != nil {
		return s.deadOr(err)
	}
	inErr := make(chan error, 1)
	switch {
	case in != nil && opts.interactive:
		go func() { inErr <- s.pumpInteractive(st.id, in) }()
	case in != nil && opts.streaming:
		go func() { inErr <- s.pumpStreaming(st.id, in) }()
	case in != nil:
		go func() { inErr <- s.pump(st.id, in) }()
	}
	if opts.resize != nil {
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			for {
				select {
				case ws := <-opts.resize:
					b, _ := json.Marshal(ws)
					_ = s.send(proto.Frame{Stream: st.id, Type: proto.TControl, Payload: b})
				case <-stop:
					return
				}
			}
		}()
	}
	cancelled := false
	for {
		waitCtx := ctx
		if cancelled {
			// Give the agent a moment to stop the operation and answer.
			var cancel context.CancelFunc
			waitCtx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
		}
		f, err := st.next(waitCtx)
		if err != nil {
			if !cancelled && ctx.Err() != nil {
				cancelled = true
				_ = s.send(proto.Frame{Stream: st.id, Type: proto.TCancel})
				continue
			}
			if cancelled {
				return ctx.Err()
			}
			return err
		}
		if f.Type != proto.TResult {
			if out != nil {
				if err := out(f); err != nil {
					// A local failure (e.g. writing copy_out data) stops the
					// remote side too; the stream is drained to its result.
					_ = s.send(proto.Frame{Stream: st.id, Type: proto.TCancel})
					return s.finish(st, err)
				}
			}
			continue
		}
		var res proto.Result
		if err := json.Unmarshal(f.Payload, &res); err != nil {
			return fmt.Errorf("%s: bad result from agent: %w", op, err)
		}
		if cancelled {
			// Do not wait for pump: it may be stuck in the caller's reader.
			return ctx.Err()
		}
		if in != nil && !opts.interactive && !opts.inputOptional {
			var perr error
			if res.Error == "" {
				perr = <-inErr
			} else {
				// The agent gave up early; the input may never end.
				select {
				case perr = <-inErr:
				case <-ctx.Done():
					perr = ctx.Err()
				}
			}
			if perr != nil {
				return perr
			}
		}
		if res.Error != "" {
			return &RemoteError{Op: op, Msg: res.Error, Errno: res.Errno}
		}
		if result != nil && len(res.Data) > 0 {
			if err := json.Unmarshal(res.Data, result); err != nil {
				return fmt.Errorf("%s: bad result data: %w", op, err)
			}
		}
		return nil
	}
}

// finish drains a cancelled stream until its result, then returns err.
func (s *Session) finish(st *clientStream, err error) error {
	wctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		f, nerr := st.next(wctx)
		if nerr != nil || f.Type == proto.TResult {
			return err
		}
	}
}

// pumpInteractive forwards whatever r has, as soon as it has it (a
// keystroke at a time), until r ends or the stream is gone.
func (s *Session) pumpInteractive(id uint32, r io.Reader) error {
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if werr := s.send(proto.Frame{Stream: id, Type: proto.TData, Payload: buf[:n]}); werr != nil {
				return s.deadOr(werr)
			}
		}
		if err != nil {
			_ = s.send(proto.Frame{Stream: id, Type: proto.TEOF})
			return nil
		}
	}
}

// pumpStreaming sends what r gives as soon as it gives it, in frames of up
// to proto.ChunkSize: a long-lived command fed requests one at a time
// (ExecStream) must see each whole request without waiting for the next.
func (s *Session) pumpStreaming(id uint32, r io.Reader) error {
	buf := make([]byte, proto.ChunkSize)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if werr := s.send(proto.Frame{Stream: id, Type: proto.TData, Payload: buf[:n]}); werr != nil {
				return s.deadOr(werr)
			}
		}
		if err != nil {
			return s.deadOr(s.send(proto.Frame{Stream: id, Type: proto.TEOF}))
		}
	}
}

// pump streams r as TData frames and then TEOF. A read error cancels the
// operation on the agent's side.
func (s *Session) pump(id uint32, r io.Reader) error {
	buf := make([]byte, proto.ChunkSize)
	for {
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			if werr := s.send(proto.Frame{Stream: id, Type: proto.TData, Payload: buf[:n]}); werr != nil {
				return s.deadOr(werr)
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return s.deadOr(s.send(proto.Frame{Stream: id, Type: proto.TEOF}))
		}
		if err != nil {
			_ = s.send(proto.Frame{Stream: id, Type: proto.TCancel})
			_ = s.send(proto.Frame{Stream: id, Type: proto.TEOF})
			return err
		}
	}
}

func (s *Session) deadOr(err error) error {
	if err == nil {
		return nil
	}
	s.mu.Lock()
	d := s.dead
	s.mu.Unlock()
	if d != nil {
		return d
	}
	select {
	case <-s.machine.Done():
		return ErrApplianceDied
	default:
	}
	return err
}

// Done is closed when the appliance VM has exited.
func (s *Session) Done() <-chan struct{} { return s.machine.Done() }

// Close shuts the appliance down in order: the agent syncs and unmounts the
// image, powers off, and qemu is reaped. An error means the image may not be
// cleanly written; callers must not commit it.
func (s *Session) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	defer os.RemoveAll(s.dir)
	sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	err := s.call(sctx, proto.OpShutdown, nil, nil, nil, nil)
	select {
	case <-s.machine.Done():
	case <-time.After(15 * time.Second):
		if err == nil {
			err = errors.New("the appliance did not power off within 15s")
		}
	}
	s.machine.Kill()
	if err != nil {
		return fmt.Errorf("shutting down the appliance: %w", err)
	}
	return nil
}

// Kill stops the appliance at once without syncing (for errors and
// interrupts, when the image is going to be discarded anyway).
func (s *Session) Kill() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.machine.Kill()
	os.RemoveAll(s.dir)
}
