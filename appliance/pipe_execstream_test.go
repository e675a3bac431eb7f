package appliance_test

import (
	"bytes"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/imgbake/imgbake/appliance/proto"
)

// notifyWriter collects output and signals each write.
type notifyWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	note chan struct{}
}

func (w *notifyWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.buf.Write(p)
	w.mu.Unlock()
	select {
	case w.note <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (w *notifyWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// TestPipeExecStream: a long-lived command gets each write of its input
// at once (Exec gathers input into 256 KiB chunks first), so it can answer
// one request before the next is written.
func TestPipeExecStream(t *testing.T) {
	s, _, _ := pipeSession(t)
	ctx := testCtx(t)
	inR, inW := io.Pipe()
	out := &notifyWriter{note: make(chan struct{}, 1)}
	done := make(chan error, 1)
	var res proto.ExecResult
	go func() {
		var err error
		res, err = s.ExecStream(ctx, proto.ExecArgs{Argv: []string{"cat"}}, inR, out, io.Discard)
		done <- err
	}()
	for _, line := range []string{"first\n", "second\n"} {
		if _, err := inW.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
		deadline := time.After(10 * time.Second)
		for !bytes.HasSuffix([]byte(out.String()), []byte(line)) {
			select {
			case <-out.note:
			case <-deadline:
				t.Fatalf("%q written, the command's output is %q after 10s", line, out.String())
			}
		}
	}
	inW.Close()
	if err := <-done; err != nil || res.RC != 0 || out.String() != "first\nsecond\n" {
		t.Errorf("ExecStream = %+v, %v; output %q", res, err, out.String())
	}
}
