package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/imgbake/imgbake/testimages"
)

// proc is imgbake running as a separate process (the test binary in
// IMGBAKE_TEST_AS_MAIN mode), with its output watched line by line.
type proc struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	out   bytes.Buffer
	lines chan string
	done  chan struct{}
}

func startImgbake(t *testing.T, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "IMGBAKE_TEST_AS_MAIN=1")
	pr, pw, err := os.Pipe()
	must(t, err)
	cmd.Stdout, cmd.Stderr = pw, pw
	must(t, cmd.Start())
	pw.Close()
	p := &proc{cmd: cmd, lines: make(chan string, 10000), done: make(chan struct{})}
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		defer close(p.lines)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			p.mu.Lock()
			p.out.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			select {
			case p.lines <- sc.Text():
			default: // nobody is waiting for that many lines
			}
		}
	}()
	go func() {
		_ = cmd.Wait()
		<-scanned // all output read before anyone looks at it
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
	})
	return p
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// waitFor waits for an output line containing s.
func (p *proc) waitFor(t *testing.T, s string, limit time.Duration) {
	t.Helper()
	deadline := time.After(limit)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				t.Fatalf("imgbake exited before printing %q:\n%s", s, p.output())
			}
			if strings.Contains(l, s) {
				return
			}
		case <-deadline:
			t.Fatalf("imgbake did not print %q within %s:\n%s", s, limit, p.output())
		}
	}
}

func (p *proc) wait(t *testing.T, limit time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(limit):
		t.Fatalf("imgbake did not exit within %s:\n%s", limit, p.output())
		return -1
	}
}

// qemusUsing lists running qemu processes whose command line mentions s.
func qemusUsing(s string) []int {
	var pids []int
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		cl, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err != nil || !bytes.Contains(cl, []byte("qemu-system")) || !bytes.Contains(cl, []byte(s)) {
			continue
		}
		if st, err := os.ReadFile(filepath.Join("/proc", d.Name(), "stat")); err == nil {
			if i := bytes.LastIndexByte(st, ')'); i > 0 && bytes.HasPrefix(bytes.TrimSpace(st[i+1:]), []byte("Z")) {
				continue // a zombie is already dead
			}
		}
		pids = append(pids, pid)
	}
	return pids
}

func waitNoQEMU(t *testing.T, s string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for len(qemusUsing(s)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("qemu still running %s after its parent went away: %v", limit, qemusUsing(s))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

const slowRecipe = "name: slow\nsteps:\n  - write: {path: /etc/changed, content: \"x\"}\n  - run: echo started; sleep 600\n  - write: {path: /etc/never, content: \"x\"}\n"

// TestSignals: SIGINT and SIGTERM stop the running step, shut the
// appliance down, discard the overlay and exit 130/143, leaving no qemu
// and no temp files.
func TestSignals(t *testing.T) {
	vmTests(t)
	for _, tc := range []struct {
		sig  syscall.Signal
		code int
	}{{syscall.SIGINT, ExitInterrupted}, {syscall.SIGTERM, ExitTerminated}} {
		t.Run(tc.sig.String(), func(t *testing.T) {
			tmp := privateTmp(t)
			disk := testimages.Fresh(t, testimages.NoPart)
			before := sha256File(t, disk)
			p := startImgbake(t, "run", "-v", "-a", disk, writeRecipe(t, slowRecipe))
			p.waitFor(t, "started", 2*time.Minute)
			sent := time.Now()
			must(t, p.cmd.Process.Signal(tc.sig))
			if code := p.wait(t, time.Minute); code != tc.code {
				t.Fatalf("exit %d, want %d:\n%s", code, tc.code, p.output())
			}
			t.Logf("%s handled in %s", tc.sig, time.Since(sent).Round(time.Millisecond))
			if !strings.Contains(p.output(), "interrupted") {
				t.Errorf("the step is not reported as interrupted:\n%s", p.output())
			}
			if strings.Contains(p.output(), "[3/3]") {
				t.Errorf("a later step ran after the signal:\n%s", p.output())
			}
			waitNoQEMU(t, disk, 5*time.Second)
			if sha256File(t, disk) != before {
				t.Fatal("an interrupted run changed the image")
			}
			noLeftovers(t, tmp)
		})
	}
}

// TestSIGKILL: qemu dies with a killed imgbake, and the next run cleans up
// what the killed one left and works normally.
func TestSIGKILL(t *testing.T) {
	vmTests(t)
	tmp := privateTmp(t)
	disk := testimages.Fresh(t, testimages.NoPart)
	before := sha256File(t, disk)
	p := startImgbake(t, "run", "-a", disk, writeRecipe(t, slowRecipe))
	p.waitFor(t, "[1/3]", 2*time.Minute)
	if len(qemusUsing(tmp)) == 0 {
		t.Fatal("no qemu found for the run")
	}
	must(t, p.cmd.Process.Kill())
	p.wait(t, 10*time.Second)
	waitNoQEMU(t, tmp, 5*time.Second)
	if sha256File(t, disk) != before {
		t.Fatal("a killed run changed the image")
	}
	left, _ := filepath.Glob(filepath.Join(tmp, "imgbake-*"))
	if len(left) == 0 {
		t.Fatal("expected the killed run to leave its private directories (otherwise this test proves nothing)")
	}
	r := imgbake(t, "run", "-v", "-a", disk, writeRecipe(t, goodRecipe))
	if r.code != 0 {
		t.Fatalf("the next run failed: %s", r)
	}
	if !strings.Contains(r.stderr, "left by a run that was killed") {
		t.Errorf("the next run did not report the cleanup:\n%s", r.stderr)
	}
	noLeftovers(t, tmp)
}

// TestQEMUDiesMidStep: the VM crashing during a step is noticed at once.
func TestQEMUDiesMidStep(t *testing.T) {
	vmTests(t)
	tmp := privateTmp(t)
	disk := testimages.Fresh(t, testimages.NoPart)
	before := sha256File(t, disk)
	p := startImgbake(t, "run", "-v", "-a", disk, writeRecipe(t, slowRecipe))
	p.waitFor(t, "started", 2*time.Minute)
	pids := qemusUsing(tmp)
	if len(pids) != 1 {
		t.Fatalf("want one qemu, found %v", pids)
	}
	must(t, syscall.Kill(pids[0], syscall.SIGKILL))
	killed := time.Now()
	code := p.wait(t, time.Minute)
	if d := time.Since(killed); d > 3*time.Second {
		t.Errorf("qemu's death took %s to be noticed", d)
	}
	if code != ExitImage || !strings.Contains(p.output(), "exited unexpectedly") {
		t.Errorf("exit %d, want %d with a clear message:\n%s", code, ExitImage, p.output())
	}
	if sha256File(t, disk) != before {
		t.Fatal("image changed")
	}
	noLeftovers(t, tmp)
}

// TestGlobalTimeout: --timeout bounds the whole run.
func TestGlobalTimeout(t *testing.T) {
	vmTests(t)
	tmp := privateTmp(t)
	disk := testimages.Fresh(t, testimages.NoPart)
	before := sha256File(t, disk)
	start := time.Now()
	r := imgbake(t, "run", "--timeout", "8s", "-a", disk, writeRecipe(t, slowRecipe))
	if r.code != ExitStepFailed || !strings.Contains(r.stderr, "exceeded --timeout 8s") {
		t.Fatalf("want exit 1 naming --timeout:\n%s", r)
	}
	if d := time.Since(start); d > time.Minute {
		t.Errorf("--timeout 8s took %s", d)
	}
	if sha256File(t, disk) != before {
		t.Fatal("image changed")
	}
	noLeftovers(t, tmp)
}
