package proto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"testing"
)

// allocSlack covers ReadFrame's small allocations besides the payload
// (the Reader itself, error values).
const allocSlack = 64 << 10

// FuzzReadFrame decodes arbitrary bytes as a frame stream and checks:
// no panic; every decoded frame re-encodes to exactly the bytes it was read
// from and decodes again to itself; every error is one of the documented
// kinds and matches what the bytes say; and no call allocates more than
// MaxPayload (plus a little), whatever length a header declares.
func FuzzReadFrame(f *testing.F) {
	f.Add(AppendFrame(nil, Frame{Stream: 1, Type: TCall, Payload: []byte(`{"op":"hello"}`)}))
	f.Fuzz(func(t *testing.T, data []byte) {
		br := bytes.NewReader(data)
		fr := NewReader(br)
		var ms runtime.MemStats
		for i := 0; ; i++ {
			start := len(data) - br.Len()
			runtime.ReadMemStats(&ms)
			before := ms.TotalAlloc
			fr2, err := fr.ReadFrame()
			runtime.ReadMemStats(&ms)
			if alloc := ms.TotalAlloc - before; alloc > MaxPayload+allocSlack {
				t.Fatalf("frame %d: ReadFrame allocated %d bytes (MaxPayload %d)", i, alloc, MaxPayload)
			}
			end := len(data) - br.Len()
			rest := data[start:]
			if err != nil {
				checkError(t, i, rest, err)
				return
			}
			if len(fr2.Payload) > MaxPayload || cap(fr2.Payload) > MaxPayload {
				t.Fatalf("frame %d: payload len %d cap %d exceeds MaxPayload", i, len(fr2.Payload), cap(fr2.Payload))
			}
			if fr2.Type == 0 || fr2.Type >= maxType {
				t.Fatalf("frame %d: decoded invalid type %d", i, fr2.Type)
			}
			if len(fr2.Payload) == 0 && fr2.Payload != nil {
				t.Fatalf("frame %d: empty payload allocated", i)
			}
			enc := AppendFrame(nil, fr2)
			if !bytes.Equal(enc, data[start:end]) {
				t.Fatalf("frame %d: re-encoded %x, read from %x", i, enc, data[start:end])
			}
			var w bytes.Buffer
			if err := WriteFrame(&w, fr2); err != nil {
				t.Fatalf("frame %d: WriteFrame of a decoded frame: %v", i, err)
			}
			if !bytes.Equal(w.Bytes(), enc) {
				t.Fatalf("frame %d: WriteFrame and AppendFrame differ", i)
			}
			again, err := NewReader(bytes.NewReader(enc)).ReadFrame()
			if err != nil || again.Stream != fr2.Stream || again.Type != fr2.Type || !bytes.Equal(again.Payload, fr2.Payload) {
				t.Fatalf("frame %d: re-decoding gave %+v, %v", i, again, err)
			}
		}
	})
}

// checkError verifies that err is what the bytes rest (the input from the
// failed frame's first byte on) call for.
func checkError(t *testing.T, i int, rest []byte, err error) {
	t.Helper()
	if len(rest) == 0 {
		if err != io.EOF {
			t.Fatalf("frame %d: at a clean end got %v, want io.EOF", i, err)
		}
		return
	}
	if err == io.EOF || errors.Is(err, io.EOF) {
		t.Fatalf("frame %d: io.EOF with %d bytes left", i, len(rest))
	}
	if len(rest) < HeaderSize {
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("frame %d: %d-byte header: got %v, want ErrUnexpectedEOF", i, len(rest), err)
		}
		return
	}
	n := binary.BigEndian.Uint32(rest[0:4])
	typ := Type(rest[8])
	switch {
	case n > MaxPayload:
		if !errors.Is(err, ErrFrameTooLarge) {
			t.Fatalf("frame %d: length %d: got %v, want ErrFrameTooLarge", i, n, err)
		}
	case typ == 0 || typ >= maxType:
		if !errors.Is(err, ErrBadType) {
			t.Fatalf("frame %d: type %d: got %v, want ErrBadType", i, typ, err)
		}
	case uint64(len(rest)-HeaderSize) < uint64(n):
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("frame %d: %d of %d payload bytes: got %v, want ErrUnexpectedEOF", i, len(rest)-HeaderSize, n, err)
		}
	default:
		t.Fatalf("frame %d: unexpected error %v for a well-formed frame", i, err)
	}
}
