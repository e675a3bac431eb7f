// Package proto is the wire protocol between imgbake on the host and its
// agent inside the appliance: length-prefixed frames carrying a stream id,
// so one virtio-serial channel multiplexes many concurrent requests and
// streams file data in chunks instead of buffering whole files.
package proto

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Type says what a frame carries.
type Type uint8

const (
	TCall    Type = iota + 1 // host→guest: JSON Call, opens a stream
	TData                    // raw bytes: stdin, file contents, tar streams
	TEOF                     // no more TData in this direction
	TStdout                  // guest→host: command output
	TStderr                  // guest→host: command error output
	TResult                  // guest→host: JSON Result, closes the stream
	TCancel                  // host→guest: stop the operation (kill the command)
	TReady                   // guest→host on stream 0: the agent is up (JSON Ready)
	TControl                 // host→guest: JSON control message for a running stream (e.g. window size)
	maxType
)

func (t Type) String() string {
	names := [...]string{"invalid", "call", "data", "eof", "stdout", "stderr", "result", "cancel", "ready", "control"}
	if int(t) < len(names) {
		return names[t]
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

const (
	// HeaderSize is length(4) + stream(4) + type(1).
	HeaderSize = 9
	// MaxPayload bounds a frame so a corrupt or hostile peer cannot make us
	// allocate without limit.
	MaxPayload = 1 << 20
	// ChunkSize is what writers use for bulk data: large writes matter
	// because QEMU's socket chardev moves at most 4 KiB per read.
	ChunkSize = 256 << 10
)

// ErrFrameTooLarge is returned for a frame whose declared length exceeds MaxPayload.
var ErrFrameTooLarge = errors.New("proto: frame too large")

// ErrBadType is returned for a frame with an unknown type byte.
var ErrBadType = errors.New("proto: unknown frame type")

// Frame is one unit on the wire.
type Frame struct {
	Stream  uint32
	Type    Type
	Payload []byte
}

// AppendFrame encodes f onto buf.
func AppendFrame(buf []byte, f Frame) []byte {
	var h [HeaderSize]byte
	binary.BigEndian.PutUint32(h[0:4], uint32(len(f.Payload)))
	binary.BigEndian.PutUint32(h[4:8], f.Stream)
	h[8] = byte(f.Type)
	buf = append(buf, h[:]...)
	return append(buf, f.Payload...)
}

// WriteFrame writes f with a single Write call so concurrent writers that
// serialize on a mutex never interleave partial frames.
func WriteFrame(w io.Writer, f Frame) error {
	if len(f.Payload) > MaxPayload {
		return fmt.Errorf("%w: %d bytes", ErrFrameTooLarge, len(f.Payload))
	}
	_, err := w.Write(AppendFrame(make([]byte, 0, HeaderSize+len(f.Payload)), f))
	return err
}

// Reader decodes frames from a byte stream.
type Reader struct {
	r   io.Reader
	hdr [HeaderSize]byte
}

// NewReader returns a frame reader; wrap r in a bufio.Reader for small frames.
func NewReader(r io.Reader) *Reader { return &Reader{r: r} }

// ReadFrame returns the next frame. The payload is freshly allocated and
// owned by the caller. io.EOF is returned only at a clean frame boundary.
func (fr *Reader) ReadFrame() (Frame, error) {
	if _, err := io.ReadFull(fr.r, fr.hdr[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return Frame{}, fmt.Errorf("proto: truncated frame header: %w", err)
		}
		return Frame{}, err
	}
	n := binary.BigEndian.Uint32(fr.hdr[0:4])
	f := Frame{Stream: binary.BigEndian.Uint32(fr.hdr[4:8]), Type: Type(fr.hdr[8])}
	if n > MaxPayload {
		return Frame{}, fmt.Errorf("%w: %d bytes", ErrFrameTooLarge, n)
	}
	if f.Type == 0 || f.Type >= maxType {
		return Frame{}, fmt.Errorf("%w: %d", ErrBadType, fr.hdr[8])
	}
	if n > 0 {
		f.Payload = make([]byte, n)
		if _, err := io.ReadFull(fr.r, f.Payload); err != nil {
			return Frame{}, fmt.Errorf("proto: truncated %s frame: %w", f.Type, io.ErrUnexpectedEOF)
		}
	}
	return f, nil
}
