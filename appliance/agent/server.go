package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"sync"
	"syscall"

	"github.com/imgbake/imgbake/appliance/proto"
)

// handler runs one operation. It reads inbound TData/TEOF through st and
// sends output frames through st; its return value becomes the TResult.
type handler func(ctx context.Context, st *stream, args json.RawMessage) (any, error)

// server multiplexes streams over one channel.
type server struct {
	w        io.Writer
	wmu      sync.Mutex
	handlers map[string]handler

	mu      sync.Mutex
	streams map[uint32]*stream
}

// stream is the agent's end of one request.
type stream struct {
	id     uint32
	srv    *server
	in     chan proto.Frame // TData, TEOF, TControl from the host
	ctx    context.Context  // ends on TCancel: inbound reads stop
	cancel context.CancelFunc
	buf    []byte // leftover of a partially consumed TData frame
	eof    bool
	// onControl, if set, receives TControl payloads (terminal resizes);
	// it runs on the reader's goroutine.
	onControl func(payload []byte)
}

func newServer(w io.Writer) *server {
	return &server{w: w, handlers: map[string]handler{}, streams: map[uint32]*stream{}}
}

func (s *server) handle(op string, h handler) { s.handlers[op] = h }

func (s *server) send(f proto.Frame) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return proto.WriteFrame(s.w, f)
}

func (s *server) sendJSON(id uint32, t proto.Type, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return s.send(proto.Frame{Stream: id, Type: t, Payload: b})
}

// serve reads frames until the channel fails. It returns io.EOF when the host
// hangs up, so the caller can reopen the port and wait for a new host.
func (s *server) serve(ctx context.Context, r io.Reader) error {
	fr := proto.NewReader(bufio.NewReaderSize(r, 1<<20))
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return err
		}
		switch f.Type {
		case proto.TCall:
			s.startCall(ctx, f)
		case proto.TData, proto.TEOF, proto.TControl:
			s.mu.Lock()
			st := s.streams[f.Stream]
			s.mu.Unlock()
			if st != nil {
				// Bounded: a fast host blocks here instead of filling our RAM.
				st.in <- f
			}
		case proto.TCancel:
			s.mu.Lock()
			st := s.streams[f.Stream]
			s.mu.Unlock()
			if st != nil {
				st.cancel()
			}
		default:
			log.Printf("agent: ignoring %s frame from host", f.Type)
		}
	}
}

func (s *server) startCall(ctx context.Context, f proto.Frame) {
	var call proto.Call
	if err := json.Unmarshal(f.Payload, &call); err != nil {
		_ = s.sendJSON(f.Stream, proto.TResult, proto.Result{Error: "bad call: " + err.Error()})
		return
	}
	h, ok := s.handlers[call.Op]
	if !ok {
		_ = s.sendJSON(f.Stream, proto.TResult, proto.Result{Error: fmt.Sprintf("unknown operation %q", call.Op)})
		return
	}
	cctx, cancel := context.WithCancel(ctx)
	st := &stream{id: f.Stream, srv: s, in: make(chan proto.Frame, 16), ctx: cctx, cancel: cancel}
	s.mu.Lock()
	if _, dup := s.streams[f.Stream]; dup {
		s.mu.Unlock()
		cancel()
		_ = s.sendJSON(f.Stream, proto.TResult, proto.Result{Error: "stream id already in use"})
		return
	}
	s.streams[f.Stream] = st
	s.mu.Unlock()
	go func() {
		defer cancel()
		out, err := h(cctx, st, call.Args)
		// A request may hold volume keys (mount, probe): no copy of it
		// outlives its handler.
		clear(call.Args)
		clear(f.Payload)
		// Unregister before answering so the host may reuse the id at once.
		s.mu.Lock()
		delete(s.streams, f.Stream)
		s.mu.Unlock()
		go drain(st.in)
		res := proto.Result{}
		if err != nil {
			res.Error = err.Error()
			var errno syscall.Errno
			if errors.As(err, &errno) {
				res.Errno = proto.ErrnoName(errno)
			}
		} else if out != nil {
			b, merr := json.Marshal(out)
			if merr != nil {
				res.Error = merr.Error()
			} else {
				res.Data = b
			}
		}
		if err := s.sendJSON(f.Stream, proto.TResult, res); err != nil {
			log.Printf("agent: sending result: %v", err)
		}
	}()
}

// drain empties a finished stream's queue so a dispatcher that looked the
// stream up just before it was unregistered never blocks on a full queue.
func drain(ch chan proto.Frame) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

// Read implements io.Reader over the stream's inbound TData frames. A
// cancelled stream fails its reads, so a handler waiting for input that
// the host will never finish sending (its own input stalled) gives up
// instead of completing the operation whenever more data turns up.
func (st *stream) Read(p []byte) (int, error) {
	for len(st.buf) == 0 {
		if st.eof {
			return 0, io.EOF
		}
		var f proto.Frame
		select {
		case f = <-st.in:
		case <-st.ctx.Done():
			return 0, st.ctx.Err()
		}
		switch f.Type {
		case proto.TData:
			st.buf = f.Payload
		case proto.TEOF:
			st.eof = true
		case proto.TControl:
			if st.onControl != nil {
				st.onControl(f.Payload)
			}
		}
	}
	n := copy(p, st.buf)
	st.buf = st.buf[n:]
	return n, nil
}

// send writes p as frames of type t, in chunks the peer accepts.
func (st *stream) send(t proto.Type, p []byte) error {
	for len(p) > 0 {
		n := min(len(p), proto.ChunkSize)
		if err := st.srv.send(proto.Frame{Stream: st.id, Type: t, Payload: p[:n]}); err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

func (st *stream) closeWrite() error {
	return st.srv.send(proto.Frame{Stream: st.id, Type: proto.TEOF})
}

// frameWriter adapts a stream to io.Writer for one frame type.
type frameWriter struct {
	st *stream
	t  proto.Type
}

func (w frameWriter) Write(p []byte) (int, error) {
	if err := w.st.send(w.t, p); err != nil {
		return 0, err
	}
	return len(p), nil
}
