package appliance

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/imgbake/imgbake/appliance/proto"
)

func TestSmallInput(t *testing.T) {
	big := bytes.Repeat([]byte("x"), proto.ChunkSize+1)
	tests := []struct {
		name   string
		r      io.Reader
		ok     bool
		want   int
		unread int // what must be left for the streaming path when !ok
	}{
		{"string", strings.NewReader("key = value\n"), true, 12, 0},
		{"empty", strings.NewReader(""), true, 0, 0},
		{"one chunk exactly", bytes.NewReader(big[:proto.ChunkSize]), true, proto.ChunkSize, 0},
		{"buffer", bytes.NewBufferString("abc"), true, 3, 0},
		{"over a chunk: streamed", bytes.NewReader(big), false, 0, proto.ChunkSize + 1},
		{"no Len: streamed", iotest.OneByteReader(strings.NewReader("abc")), false, 0, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, ok, err := smallInput(tc.r)
			if err != nil || ok != tc.ok || len(b) != tc.want {
				t.Fatalf("smallInput = %d bytes, %v, %v; want %d, %v", len(b), ok, err, tc.want, tc.ok)
			}
			if !ok {
				rest, _ := io.ReadAll(tc.r)
				if len(rest) != tc.unread {
					t.Errorf("%d bytes left for streaming, want %d (nothing may be consumed)", len(rest), tc.unread)
				}
			}
		})
	}
}
