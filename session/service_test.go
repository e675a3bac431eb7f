package session

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imgbake/imgbake/appliance/proto"
	"github.com/imgbake/imgbake/session/api"
)

// testService is this test binary run as a service (TestMain): mode
// "echo" answers every request with it uppercased, "hang" never answers
// but acknowledges a cancel, "exit" exits 3 on a request, "broken" exits
// before its hello.
func testService(mode string) int {
	if mode == "broken" {
		fmt.Fprintln(os.Stderr, "python3: not found")
		return 127
	}
	in, out := bufio.NewReader(os.Stdin), os.Stdout
	_ = writeServiceFrame(out, api.ServiceHello, []byte(fmt.Sprintf(`{"pid":%d}`, os.Getpid())))
	for {
		kind, b, err := readServiceFrame(in)
		if err != nil {
			return 0 // EOF: the session is stopping
		}
		switch {
		case kind == api.ServiceCancel:
			_ = writeServiceFrame(out, api.ServiceAnswer, []byte("canceled"))
		case string(b) == "exit":
			return 3
		case string(b) == "hang":
			// the answer comes with the cancel
		default:
			_ = writeServiceFrame(out, api.ServiceAnswer, append(bytes.ToUpper(b), fmt.Sprintf(" from %d", os.Getpid())...))
		}
	}
}

// localStart runs a service as a local process (the daemon's runs it in the
// image through the agent): this test binary in mode argv[0].
func localStart(t *testing.T) (startFunc, *sync.WaitGroup) {
	var running sync.WaitGroup
	return func(ctx context.Context, args proto.ExecArgs, stdin io.Reader, stdout, stderr io.Writer) (proto.ExecResult, error) {
		running.Add(1)
		defer running.Done()
		exe, err := os.Executable()
		if err != nil {
			return proto.ExecResult{}, err
		}
		cmd := exec.CommandContext(ctx, exe)
		cmd.Env = append(os.Environ(), "IMGBAKE_SESSION_TEST_SERVICE="+args.Argv[0])
		cmd.Stdout, cmd.Stderr = stdout, stderr
		// As the appliance's Exec does, the input is not waited for once
		// the process has exited.
		w, err := cmd.StdinPipe()
		if err != nil {
			return proto.ExecResult{}, err
		}
		if err := cmd.Start(); err != nil {
			return proto.ExecResult{}, err
		}
		go func() { _, _ = io.Copy(w, stdin); w.Close() }()
		err = cmd.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return proto.ExecResult{RC: ee.ExitCode()}, nil
		}
		return proto.ExecResult{}, err
	}, &running
}

func TestServiceKeepsOneProcess(t *testing.T) {
	start, running := localStart(t)
	var log bytes.Buffer
	var logMu sync.Mutex
	svc := newServices(context.Background(), start, func(f string, a ...any) {
		logMu.Lock()
		fmt.Fprintf(&log, f+"\n", a...)
		logMu.Unlock()
	})
	ctx := context.Background()
	var pids []string
	for _, word := range []string{"one", "two", "three"} {
		p, err := svc.get(ctx, "echo", proto.ExecArgs{Argv: []string{"echo"}})
		if err != nil {
			t.Fatal(err)
		}
		ans, err := svc.call(ctx, p, []byte(word))
		if err != nil {
			t.Fatal(err)
		}
		up, pid, ok := strings.Cut(string(ans), " from ")
		if !ok || up != strings.ToUpper(word) {
			t.Errorf("answer %q to %q", ans, word)
		}
		pids = append(pids, pid)
	}
	if pids[0] != pids[1] || pids[1] != pids[2] {
		t.Errorf("the requests were served by processes %v, want one", pids)
	}
	st := svc.status()
	if len(st) != 1 || st[0].Starts != 1 || st[0].Requests != 3 || !st[0].Running {
		t.Errorf("status %+v", st)
	}
	svc.stopAll(5 * time.Second)
	running.Wait()
	logMu.Lock()
	defer logMu.Unlock()
	if strings.Count(log.String(), "service echo started") != 1 || !strings.Contains(log.String(), "service echo stopped: rc 0") {
		t.Errorf("log:\n%s", log.String())
	}
}

func TestServiceCancelKeepsItInStep(t *testing.T) {
	start, running := localStart(t)
	svc := newServices(context.Background(), start, func(string, ...any) {})
	defer func() { svc.stopAll(5 * time.Second); running.Wait() }()
	p, err := svc.get(context.Background(), "hang", proto.ExecArgs{Argv: []string{"hang"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := svc.call(ctx, p, []byte("hang")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a hanging request: %v", err)
	}
	// The cancel's acknowledgement was consumed: the next answer is its own.
	ans, err := svc.call(context.Background(), p, []byte("after"))
	if err != nil || !strings.HasPrefix(string(ans), "AFTER from ") {
		t.Errorf("the request after a cancel got %q, %v", ans, err)
	}
}

func TestServiceCrashAndRestart(t *testing.T) {
	start, running := localStart(t)
	svc := newServices(context.Background(), start, func(string, ...any) {})
	defer func() { svc.stopAll(5 * time.Second); running.Wait() }()
	ctx := context.Background()
	p, err := svc.get(ctx, "k", proto.ExecArgs{Argv: []string{"echo"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.call(ctx, p, []byte("exit")); err == nil || !strings.Contains(err.Error(), "service k exited (rc 3)") {
		t.Errorf("a request killing the service: %v", err)
	}
	p2, err := svc.get(ctx, "k", proto.ExecArgs{Argv: []string{"echo"}})
	if err != nil || p2 == p {
		t.Fatalf("no fresh process after a crash: %v", err)
	}
	if ans, err := svc.call(ctx, p2, []byte("x")); err != nil || !strings.HasPrefix(string(ans), "X from") {
		t.Errorf("after the restart: %q, %v", ans, err)
	}
	if st := svc.status(); len(st) != 1 || st[0].Starts != 2 {
		t.Errorf("status %+v", st)
	}
}

func TestServiceThatCannotStart(t *testing.T) {
	start, running := localStart(t)
	svc := newServices(context.Background(), start, func(string, ...any) {})
	defer func() { svc.stopAll(time.Second); running.Wait() }()
	var out bytes.Buffer
	fc := api.NewFrameConn(&out)
	res := serveService(context.Background(), svc, api.Request{Op: api.OpService, Service: "py", Argv: []string{"broken"}}, strings.NewReader("req"), fc)
	if !res.NoService || res.Code != api.ExitSession || !strings.Contains(res.Error, "rc 127 before it was ready: python3: not found") {
		t.Errorf("result %+v", res)
	}
	res = serveService(context.Background(), svc, api.Request{Op: api.OpService, Service: "py", Argv: []string{"echo"}}, strings.NewReader("req"), fc)
	if res.Error != "" {
		t.Fatalf("result %+v", res)
	}
	f, err := proto.NewReader(&out).ReadFrame()
	if err != nil || f.Type != proto.TData || !strings.HasPrefix(string(f.Payload), "REQ from ") {
		t.Errorf("frame %+v, %v", f, err)
	}
	if res := serveService(context.Background(), svc, api.Request{Op: api.OpService, Service: "py"}, strings.NewReader(""), fc); res.Code == 0 {
		t.Errorf("a service request without a command: %+v", res)
	}
}
