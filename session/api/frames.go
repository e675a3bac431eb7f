package api

import (
	"encoding/json"
	"io"
	"sync"

	"github.com/imgbake/imgbake/appliance/proto"
)

// Stream is the frame stream every session connection uses (one request
// per connection).
const Stream = 1

// FrameConn writes frames on a session connection; concurrent writers
// (a command's stdout and stderr) are serialized.
type FrameConn struct {
	mu sync.Mutex
	w  io.Writer
}

// NewFrameConn writes frames to w (the connection).
func NewFrameConn(w io.Writer) *FrameConn { return &FrameConn{w: w} }

// Send writes one frame.
func (fc *FrameConn) Send(t proto.Type, payload []byte) error {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	return proto.WriteFrame(fc.w, proto.Frame{Stream: Stream, Type: t, Payload: payload})
}

// SendJSON writes one frame holding v as JSON (TCall, TResult).
func (fc *FrameConn) SendJSON(t proto.Type, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return fc.Send(t, b)
}

// Stream is an io.Writer sending what is written as frames of type t, in
// chunks of at most proto.ChunkSize.
func (fc *FrameConn) Stream(t proto.Type) io.Writer { return streamWriter{fc, t} }

type streamWriter struct {
	fc *FrameConn
	t  proto.Type
}

func (w streamWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		c := min(len(p), proto.ChunkSize)
		if err := w.fc.Send(w.t, p[:c]); err != nil {
			return n, err
		}
		n += c
		p = p[c:]
	}
	return n, nil
}
