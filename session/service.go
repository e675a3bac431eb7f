package session

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/imgbake/imgbake/appliance/proto"
	"github.com/imgbake/imgbake/session/api"
)

// A service is a long-lived process in the image that the daemon starts on
// the first service request naming it and keeps for the session, relaying
// each later request to it over its stdin/stdout in api.Service* frames
// (the module host of the Ansible plugin is one). Requests to one service
// are served one at a time, in order.

// startFunc runs argv in the image until ctx ends, as exec does; the
// daemon's is the appliance session's Exec.
type startFunc func(ctx context.Context, args proto.ExecArgs, stdin io.Reader, stdout, stderr io.Writer) (proto.ExecResult, error)

// serviceReadyTimeout bounds a service's start (its hello frame): Python
// importing its modules under TCG takes seconds, not minutes.
const serviceReadyTimeout = 3 * time.Minute

type services struct {
	ctx   context.Context // the session's: ends every service
	start startFunc
	logf  func(format string, args ...any)

	mu     sync.Mutex
	procs  map[string]*serviceProc
	starts map[string]int64
	calls  map[string]int64
}

func newServices(ctx context.Context, start startFunc, logf func(string, ...any)) *services {
	return &services{ctx: ctx, start: start, logf: logf, procs: map[string]*serviceProc{},
		starts: map[string]int64{}, calls: map[string]int64{}}
}

type serviceProc struct {
	key    string
	in     *io.PipeWriter
	out    io.Reader
	stderr *tailWriter
	cancel context.CancelFunc
	busy   chan struct{} // holds a token while a request is being served
	exited chan struct{} // closed when the process has ended
	res    proto.ExecResult
	err    error
	broken atomic.Bool // out of step with the daemon (a failed frame): never reused
}

// errNoService is a service that could not be started or died before it
// was ready.
var errNoService = errors.New("the service is not available")

// get returns the running service key, starting it with args when it is
// not running.
func (s *services) get(ctx context.Context, key string, args proto.ExecArgs) (*serviceProc, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.procs[key]; p != nil && !p.broken.Load() {
		select {
		case <-p.exited:
		default:
			return p, nil
		}
	}
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	pctx, cancel := context.WithCancel(s.ctx)
	p := &serviceProc{key: key, in: inW, out: outR, stderr: &tailWriter{max: 4096, logf: s.logf, prefix: "service " + key + ": "},
		cancel: cancel, busy: make(chan struct{}, 1), exited: make(chan struct{})}
	s.starts[key]++
	t := time.Now()
	go func() {
		p.res, p.err = s.start(pctx, args, inR, outW, p.stderr)
		outW.CloseWithError(io.EOF)
		inR.CloseWithError(io.ErrClosedPipe)
		close(p.exited)
	}()
	hello := make(chan error, 1)
	var payload []byte
	go func() {
		kind, b, err := readServiceFrame(outR)
		if err == nil && kind != api.ServiceHello {
			err = fmt.Errorf("its first frame is %q, not a hello", kind)
		}
		payload = b
		hello <- err
	}()
	var err error
	select {
	case err = <-hello:
	case <-ctx.Done():
		err = ctx.Err()
	case <-time.After(serviceReadyTimeout):
		err = fmt.Errorf("not ready after %s", serviceReadyTimeout)
	}
	if err != nil {
		p.stop(5 * time.Second)
		why := err.Error()
		if p.err != nil {
			why = p.err.Error()
		} else if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			why = fmt.Sprintf("it exited with rc %d before it was ready", p.res.RC)
		}
		if tail := strings.TrimSpace(p.stderr.String()); tail != "" {
			why += ": " + lastLines(tail, 5)
		}
		s.logf("service %s failed to start: %s", key, why)
		return nil, fmt.Errorf("%w: %s: %s", errNoService, key, why)
	}
	s.logf("service %s started in %s (start %d of this session): %s", key, time.Since(t).Round(time.Millisecond), s.starts[key], payload)
	s.procs[key] = p
	return p, nil
}

// call sends one request to the service and returns its answer. When ctx
// ends first the service is told to cancel the request; the answer to a
// cancelled request is awaited (the service stays in step) and dropped.
func (s *services) call(ctx context.Context, p *serviceProc, body []byte) ([]byte, error) {
	select {
	case p.busy <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-p.exited:
		return nil, p.exitErr()
	}
	defer func() { <-p.busy }()
	s.mu.Lock()
	s.calls[p.key]++
	s.mu.Unlock()
	if err := writeServiceFrame(p.in, api.ServiceRequest, body); err != nil {
		p.broken.Store(true)
		return nil, p.exitErr()
	}
	type answer struct {
		kind byte
		b    []byte
		err  error
	}
	ans := make(chan answer, 1)
	go func() {
		for {
			kind, b, err := readServiceFrame(p.out)
			if err == nil && kind != api.ServiceAnswer {
				continue // not meant for the daemon: skip it
			}
			ans <- answer{kind, b, err}
			return
		}
	}()
	select {
	case a := <-ans:
		if a.err != nil {
			p.broken.Store(true)
			return nil, p.exitErr()
		}
		return a.b, nil
	case <-ctx.Done():
		_ = writeServiceFrame(p.in, api.ServiceCancel, nil)
		select {
		case a := <-ans:
			if a.err != nil {
				p.broken.Store(true)
			}
		case <-time.After(30 * time.Second):
			s.logf("service %s did not answer a cancelled request in 30s: stopping it", p.key)
			p.broken.Store(true)
			go p.stop(5 * time.Second)
		}
		return nil, ctx.Err()
	}
}

func (p *serviceProc) exitErr() error {
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		return fmt.Errorf("service %s stopped answering", p.key)
	}
	why := fmt.Sprintf("rc %d", p.res.RC)
	if p.err != nil {
		why = p.err.Error()
	}
	if tail := strings.TrimSpace(p.stderr.String()); tail != "" {
		why += ": " + lastLines(tail, 5)
	}
	return fmt.Errorf("service %s exited (%s)", p.key, why)
}

// stop ends the process: EOF on its stdin first (it cleans up and exits),
// killed after grace.
func (p *serviceProc) stop(grace time.Duration) {
	p.in.Close()
	select {
	case <-p.exited:
	case <-time.After(grace):
		p.cancel()
		<-p.exited
	}
	p.cancel()
}

// stopAll ends every service, in parallel.
func (s *services) stopAll(grace time.Duration) {
	s.mu.Lock()
	procs := s.procs
	s.procs = map[string]*serviceProc{}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for key, p := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.stop(grace)
			s.logf("service %s stopped: rc %d", key, p.res.RC)
		}()
	}
	wg.Wait()
}

func (s *services) status() []api.ServiceStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []api.ServiceStatus
	for key, n := range s.starts {
		st := api.ServiceStatus{Key: key, Starts: n, Requests: s.calls[key]}
		if p := s.procs[key]; p != nil {
			select {
			case <-p.exited:
			default:
				st.Running = true
			}
		}
		out = append(out, st)
	}
	return out
}

// readServiceFrame reads one api.Service* frame.
func readServiceFrame(r io.Reader) (byte, []byte, error) {
	var h [5]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(h[1:])
	if n > api.ServiceMaxFrame {
		return 0, nil, fmt.Errorf("a service frame of %d bytes", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return 0, nil, err
	}
	return h[0], b, nil
}

func writeServiceFrame(w io.Writer, kind byte, b []byte) error {
	if len(b) > api.ServiceMaxFrame {
		return fmt.Errorf("a service request of %d bytes is too large", len(b))
	}
	buf := make([]byte, 5, 5+len(b))
	buf[0] = kind
	binary.BigEndian.PutUint32(buf[1:], uint32(len(b)))
	_, err := w.Write(append(buf, b...))
	return err
}

// tailWriter keeps the last max bytes written (a service's stderr, for
// errors) and copies complete lines to the session log.
type tailWriter struct {
	mu     sync.Mutex
	max    int
	buf    []byte
	line   []byte
	logf   func(string, ...any)
	prefix string
}

func (w *tailWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	if len(w.buf) > w.max {
		w.buf = w.buf[len(w.buf)-w.max:]
	}
	w.line = append(w.line, p...)
	for {
		i := bytes.IndexByte(w.line, '\n')
		if i < 0 {
			break
		}
		if w.logf != nil {
			w.logf("%s%s", w.prefix, w.line[:i])
		}
		w.line = w.line[i+1:]
	}
	if len(w.line) > w.max {
		w.line = w.line[:0]
	}
	return len(p), nil
}

func (w *tailWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.buf)
}
