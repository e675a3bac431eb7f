package proto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
)

// header builds a raw frame header, bypassing AppendFrame's encoding so
// tests can declare lengths and types AppendFrame would never produce.
func header(n uint32, stream uint32, typ byte) []byte {
	h := make([]byte, HeaderSize)
	binary.BigEndian.PutUint32(h[0:4], n)
	binary.BigEndian.PutUint32(h[4:8], stream)
	h[8] = typ
	return h
}

func TestFrameRoundTrip(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), MaxPayload/16)
	tests := []struct {
		name string
		f    Frame
	}{
		{"call", Frame{Stream: 1, Type: TCall, Payload: []byte(`{"op":"hello"}`)}},
		{"empty data", Frame{Stream: 7, Type: TData}},
		{"eof", Frame{Stream: 7, Type: TEOF}},
		{"stdout", Frame{Stream: 2, Type: TStdout, Payload: []byte("out\n")}},
		{"stderr", Frame{Stream: 2, Type: TStderr, Payload: []byte("err\n")}},
		{"result", Frame{Stream: 3, Type: TResult, Payload: []byte(`{"error":"x","errno":"ENOENT"}`)}},
		{"cancel", Frame{Stream: 3, Type: TCancel}},
		{"ready on stream 0", Frame{Stream: 0, Type: TReady, Payload: []byte(`{"version":"0.1.0"}`)}},
		{"control", Frame{Stream: 9, Type: TControl, Payload: []byte(`{}`)}},
		{"max stream id", Frame{Stream: ^uint32(0), Type: TData, Payload: []byte{0, 1, 2}}},
		{"binary payload", Frame{Stream: 4, Type: TData, Payload: []byte{0, 0xff, '\n', 0, 0x80}}},
		{"exactly MaxPayload", Frame{Stream: 5, Type: TData, Payload: big}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := WriteFrame(&buf, tt.f); err != nil {
				t.Fatalf("WriteFrame: %v", err)
			}
			enc := buf.Bytes()
			if want := HeaderSize + len(tt.f.Payload); len(enc) != want {
				t.Fatalf("encoded %d bytes, want %d", len(enc), want)
			}
			if app := AppendFrame([]byte("prefix"), tt.f); !bytes.Equal(app[6:], enc) || string(app[:6]) != "prefix" {
				t.Fatalf("AppendFrame differs from WriteFrame")
			}
			if got := binary.BigEndian.Uint32(enc[0:4]); got != uint32(len(tt.f.Payload)) {
				t.Errorf("length field %d, want %d", got, len(tt.f.Payload))
			}
			if got := binary.BigEndian.Uint32(enc[4:8]); got != tt.f.Stream {
				t.Errorf("stream field %d, want %d", got, tt.f.Stream)
			}
			r := NewReader(bytes.NewReader(enc))
			got, err := r.ReadFrame()
			if err != nil {
				t.Fatalf("ReadFrame: %v", err)
			}
			if got.Stream != tt.f.Stream || got.Type != tt.f.Type || !bytes.Equal(got.Payload, tt.f.Payload) {
				t.Fatalf("decoded %v/%v/%d bytes, want %v/%v/%d bytes",
					got.Stream, got.Type, len(got.Payload), tt.f.Stream, tt.f.Type, len(tt.f.Payload))
			}
			if len(tt.f.Payload) > 0 && &got.Payload[0] == &enc[HeaderSize] {
				t.Error("payload aliases the input buffer; it must be owned by the caller")
			}
			if _, err := r.ReadFrame(); err != io.EOF {
				t.Fatalf("after the only frame: err = %v, want io.EOF", err)
			}
		})
	}
}

func TestReadFrameSequence(t *testing.T) {
	frames := []Frame{
		{Stream: 0, Type: TReady, Payload: []byte(`{}`)},
		{Stream: 1, Type: TCall, Payload: []byte(`{"op":"read"}`)},
		{Stream: 1, Type: TData, Payload: bytes.Repeat([]byte{'x'}, ChunkSize)},
		{Stream: 1, Type: TEOF},
		{Stream: 1, Type: TResult, Payload: []byte(`{}`)},
	}
	var wire []byte
	for _, f := range frames {
		wire = AppendFrame(wire, f)
	}
	// A reader returning one byte at a time must not change the outcome.
	for _, src := range []struct {
		name string
		r    io.Reader
	}{{"whole", bytes.NewReader(wire)}, {"one byte reads", &oneByteReader{wire}}} {
		t.Run(src.name, func(t *testing.T) {
			r := NewReader(src.r)
			for i, want := range frames {
				got, err := r.ReadFrame()
				if err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				if got.Stream != want.Stream || got.Type != want.Type || !bytes.Equal(got.Payload, want.Payload) {
					t.Fatalf("frame %d: got %v/%v, want %v/%v", i, got.Stream, got.Type, want.Stream, want.Type)
				}
			}
			if _, err := r.ReadFrame(); err != io.EOF {
				t.Fatalf("at end: %v, want io.EOF", err)
			}
		})
	}
}

type oneByteReader struct{ b []byte }

func (r *oneByteReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	p[0] = r.b[0]
	r.b = r.b[1:]
	return 1, nil
}

func TestWriteFrameTooLarge(t *testing.T) {
	for _, n := range []int{MaxPayload + 1, 2 * MaxPayload} {
		var buf bytes.Buffer
		err := WriteFrame(&buf, Frame{Stream: 1, Type: TData, Payload: make([]byte, n)})
		if !errors.Is(err, ErrFrameTooLarge) {
			t.Errorf("%d bytes: err = %v, want ErrFrameTooLarge", n, err)
		}
		if buf.Len() != 0 {
			t.Errorf("%d bytes: %d bytes written for a rejected frame", n, buf.Len())
		}
	}
}

// countingReader counts how much ReadFrame consumed.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestReadFrameErrors(t *testing.T) {
	valid := AppendFrame(nil, Frame{Stream: 1, Type: TData, Payload: []byte("hello")})
	tests := []struct {
		name     string
		in       []byte
		want     error // matched with errors.Is
		notEOF   bool  // the error must not be a clean io.EOF
		maxRead  int   // bytes ReadFrame may consume; -1: no limit
		contains string
	}{
		{name: "empty input is a clean EOF", in: nil, want: io.EOF, maxRead: -1},
		{name: "1 byte of header", in: valid[:1], want: io.ErrUnexpectedEOF, notEOF: true, maxRead: -1, contains: "truncated frame header"},
		{name: "8 bytes of header", in: valid[:8], want: io.ErrUnexpectedEOF, notEOF: true, maxRead: -1, contains: "truncated frame header"},
		{name: "header only, payload missing", in: valid[:HeaderSize], want: io.ErrUnexpectedEOF, notEOF: true, maxRead: -1, contains: "truncated data frame"},
		{name: "payload cut short", in: valid[:len(valid)-1], want: io.ErrUnexpectedEOF, notEOF: true, maxRead: -1, contains: "truncated data frame"},
		{name: "length MaxPayload+1", in: append(header(MaxPayload+1, 1, byte(TData)), make([]byte, 64)...),
			want: ErrFrameTooLarge, maxRead: HeaderSize},
		{name: "length 4 GiB-1", in: append(header(^uint32(0), 1, byte(TData)), make([]byte, 64)...),
			want: ErrFrameTooLarge, maxRead: HeaderSize},
		{name: "type 0", in: append(header(1, 1, 0), 'x'), want: ErrBadType, maxRead: HeaderSize},
		{name: "type just past the last", in: append(header(1, 1, byte(maxType)), 'x'), want: ErrBadType, maxRead: HeaderSize},
		{name: "type 255", in: header(0, 1, 255), want: ErrBadType, maxRead: HeaderSize},
		{name: "oversize and bad type", in: header(MaxPayload+1, 1, 0), want: ErrFrameTooLarge, maxRead: HeaderSize},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cr := &countingReader{r: bytes.NewReader(tt.in)}
			f, err := NewReader(cr).ReadFrame()
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if tt.notEOF && err == io.EOF {
				t.Fatalf("truncation reported as a clean io.EOF")
			}
			if tt.contains != "" && !strings.Contains(err.Error(), tt.contains) {
				t.Errorf("error %q does not mention %q", err, tt.contains)
			}
			if tt.maxRead >= 0 && cr.n > tt.maxRead {
				t.Errorf("consumed %d bytes, want at most %d", cr.n, tt.maxRead)
			}
			if f.Payload != nil || f.Type != 0 || f.Stream != 0 {
				t.Errorf("frame %+v returned with an error", f)
			}
		})
	}
}

// A reader error other than EOF is passed through unchanged.
func TestReadFrameReaderError(t *testing.T) {
	boom := errors.New("boom")
	_, err := NewReader(io.MultiReader(bytes.NewReader([]byte{0, 0}), &errReader{boom})).ReadFrame()
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want %v", err, boom)
	}
}

type errReader struct{ err error }

func (r *errReader) Read([]byte) (int, error) { return 0, r.err }

func TestTypeString(t *testing.T) {
	for typ, want := range map[Type]string{
		0: "invalid", TCall: "call", TData: "data", TEOF: "eof", TStdout: "stdout", TStderr: "stderr",
		TResult: "result", TCancel: "cancel", TReady: "ready", TControl: "control", maxType: "type(10)", 255: "type(255)",
	} {
		if got := typ.String(); got != want {
			t.Errorf("Type(%d).String() = %q, want %q", uint8(typ), got, want)
		}
	}
}
