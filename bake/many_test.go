package bake

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imgbake/imgbake/recipes"
)

// lockedBuffer records every Write call, to check that each holds whole lines.
type lockedBuffer struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.writes++
	if len(p) == 0 || p[len(p)-1] != '\n' {
		return 0, fmt.Errorf("write of a partial line: %q", p)
	}
	return b.buf.Write(p)
}

func TestPrefixedConcurrent(t *testing.T) {
	var out lockedBuffer
	sink := NewLineSink(&out)
	const writers, lines = 8, 200
	var wg sync.WaitGroup
	for w := range writers {
		shared := sink.Prefixed(fmt.Sprintf("[img%d] ", w))
		// Writers 0-3: one goroutine writing chunks that cut lines
		// anywhere (a command's live output). Writers 4-7: two goroutines
		// sharing the writer, each writing whole lines (a job's events and
		// its -v progress lines).
		chunked := w < writers/2
		for g := range 2 {
			lw := shared
			if chunked && g == 1 {
				lw = sink.Prefixed(fmt.Sprintf("[img%d] ", w)) // its own writer
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				var text strings.Builder
				for i := range lines {
					fmt.Fprintf(&text, "g%d line %03d %s\n", g, i, strings.Repeat("x", i%37))
				}
				s := text.String()
				for len(s) > 0 {
					n := min(len(s), 1+len(s)%13)
					if !chunked {
						n = strings.IndexByte(s, '\n') + 1
						if len(s)%3 == 0 { // sometimes two lines at once
							n += strings.IndexByte(s[n:], '\n') + 1
						}
					}
					if _, err := lw.Write([]byte(s[:n])); err != nil {
						t.Error(err)
						return
					}
					s = s[n:]
				}
			}()
		}
	}
	wg.Wait()
	// A last line without a newline is completed by Flush.
	tail := sink.Prefixed("[tail] ")
	tail.Write([]byte("no newline"))
	if out.buf.Len() > 0 && strings.Contains(out.buf.String(), "no newline") {
		t.Error("a partial line was written before Flush")
	}
	if err := tail.Flush(); err != nil {
		t.Fatal(err)
	}
	tail.Flush() // nothing left: writes nothing

	count := map[string]int{}
	sc := bufio.NewScanner(&out.buf)
	for sc.Scan() {
		l := sc.Text()
		if l == "[tail] no newline" {
			count["tail"]++
			continue
		}
		var w, g, i int
		var xs string
		if _, err := fmt.Sscanf(l, "[img%d] g%d line %d %s", &w, &g, &i, &xs); err != nil && !strings.HasSuffix(l, " ") {
			t.Fatalf("mangled line %q: %v", l, err)
		}
		if want := fmt.Sprintf("[img%d] g%d line %03d %s", w, g, i, strings.Repeat("x", i%37)); l != want {
			t.Fatalf("line %q, want %q", l, want)
		}
		count[fmt.Sprintf("%d/%d", w, g)]++
	}
	if len(count) != writers*2+1 {
		t.Fatalf("lines from %d writers, want %d", len(count), writers*2+1)
	}
	for k, n := range count {
		if want := map[bool]int{true: 1, false: lines}[k == "tail"]; n != want {
			t.Errorf("%s: %d lines, want %d", k, n, want)
		}
	}
}

func TestPrefixedLongPartial(t *testing.T) {
	var out bytes.Buffer
	lw := NewLineSink(&out).Prefixed("> ")
	lw.Write(bytes.Repeat([]byte("a"), maxPartial+10))
	if got := strings.Count(out.String(), "\n"); got != 1 || !strings.HasPrefix(out.String(), "> aaa") {
		t.Fatalf("a line longer than %d bytes was not written as one: %d lines", maxPartial, got)
	}
}

func TestJSONLines(t *testing.T) {
	var out bytes.Buffer
	lw := NewLineSink(&out).JSONLines("disk", `img "1".qcow2`)
	ev := NewJSONEvents(lw)
	rec := &recipes.Recipe{Name: "r"}
	ev.RunStart(rec, recipes.Facts{})
	ev.RunEnd(rec, Summary{OK: 2}, time.Second, nil, "")
	lw.Write([]byte("not json\n{}\n"))
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("got %d lines:\n%s", len(lines), out.String())
	}
	for i, l := range lines[:2] {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %d %q: %v", i, l, err)
		}
		if m["disk"] != `img "1".qcow2` || m["event"] == nil {
			t.Errorf("line %d lacks the disk or the event: %q", i, l)
		}
		if !strings.HasPrefix(l, `{"disk":"img \"1\".qcow2","event":`) {
			t.Errorf("line %d: the disk is not first: %q", i, l)
		}
	}
	if m := map[string]any{}; json.Unmarshal([]byte(lines[1]), &m) != nil || m["image"] != "changed" {
		t.Errorf("run_end lost its own image field: %q", lines[1])
	}
	if lines[2] != "not json" || lines[3] != `{"disk":"img \"1\".qcow2"}` {
		t.Errorf("other lines: %q", lines[2:])
	}
}

func TestDefaultParallel(t *testing.T) {
	mi := func(availMiB int) string {
		return fmt.Sprintf("MemTotal:       32000000 kB\nMemFree:         1000 kB\nMemAvailable:   %d kB\nBuffers: 1 kB\n", availMiB*1024)
	}
	for _, tc := range []struct {
		meminfo   string
		cpus, mem int
		want      int
	}{
		{mi(24000), 2, 512, 2},    // memory for 36: the cores decide
		{mi(24000), 16, 512, 16},  // one per core
		{mi(24000), 64, 512, 36},  // memory: 24000 / 662
		{mi(24000), 64, 0, 36},    // 0 means 512
		{mi(24000), 64, 2048, 10}, // 24000 / 2198
		{mi(1300), 2, 512, 1},     // one fits
		{mi(600), 8, 512, 1},      // not even one: still 1
		{"garbage", 3, 512, 3},    // no MemAvailable: the cores decide
		{"", 0, 512, 1},           // no CPUs reported: at least one
		{"MemAvailable: x kB\n", 1, 512, 1},
		{"MemAvailable: 99999999 MB\n", 1, 512, 1}, // an unknown unit is ignored
	} {
		if got := defaultParallel(tc.meminfo, tc.cpus, tc.mem); got != tc.want {
			t.Errorf("defaultParallel(%q, %d cpus, %d MiB) = %d, want %d", tc.meminfo, tc.cpus, tc.mem, got, tc.want)
		}
	}
	if n := DefaultParallel(512); n < 1 {
		t.Errorf("DefaultParallel on this host = %d", n)
	}
}

func jobsNamed(n int) []Job {
	jobs := make([]Job, n)
	for i := range jobs {
		jobs[i].Name = fmt.Sprintf("img%02d", i)
	}
	return jobs
}

func TestScheduleLimit(t *testing.T) {
	for _, parallel := range []int{1, 3, 20} {
		t.Run(fmt.Sprint(parallel), func(t *testing.T) {
			var running, peak atomic.Int32
			var order sync.Map
			jobs := jobsNamed(12)
			res := schedule(context.Background(), jobs, parallel, func(ctx context.Context, j Job) JobResult {
				n := running.Add(1)
				defer running.Add(-1)
				for {
					p := peak.Load()
					if n <= p || peak.CompareAndSwap(p, n) {
						break
					}
				}
				order.Store(j.Name, true)
				time.Sleep(5 * time.Millisecond)
				switch j.Name {
				case "img03":
					err := Classify(ErrStepFailed, errors.New("step 2 failed"))
					return JobResult{Err: err, Code: ExitCode(err), Ran: true, Summary: Summary{OK: 1, Failed: 1}}
				case "img05":
					panic("boom")
				}
				return JobResult{Summary: Summary{Changed: 3}}
			})
			if p := int(peak.Load()); p > parallel || p < min(parallel, len(jobs)) {
				t.Errorf("peak concurrency %d with a limit of %d (12 jobs)", p, parallel)
			}
			if len(res) != len(jobs) {
				t.Fatalf("%d results", len(res))
			}
			for i, r := range res {
				if r.Name != jobs[i].Name || !r.Started || r.Took <= 0 {
					t.Errorf("result %d: %+v", i, r)
				}
				switch r.Name {
				case "img03":
					if r.Code != ExitStepFailed {
						t.Errorf("img03: %+v", r)
					}
				case "img05":
					if r.Code != ExitImage || !strings.Contains(r.Err.Error(), "boom") {
						t.Errorf("a panicking job: %+v", r)
					}
				default:
					if r.Err != nil || r.Summary.Changed != 3 {
						t.Errorf("%s was affected by the others: %+v", r.Name, r)
					}
				}
			}
			if got := WorstExit(res); got != ExitImage {
				t.Errorf("WorstExit = %d, want %d", got, ExitImage)
			}
		})
	}
}

func TestScheduleCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := make(chan string, 10)
	res := schedule(ctx, jobsNamed(6), 2, func(ctx context.Context, j Job) JobResult {
		started <- j.Name
		if len(started) == 2 {
			cancel()
		}
		<-ctx.Done() // the running jobs see the cancellation
		return JobResult{Err: ctx.Err(), Code: ExitCode(ctx.Err())}
	})
	close(started)
	n := 0
	for range started {
		n++
	}
	if n != 2 {
		t.Errorf("%d jobs started after the cancellation, want 2", n)
	}
	for _, r := range res[2:] {
		if r.Started || r.Code != ExitInterrupted || !strings.Contains(r.Line(), "not started (exit 130)") {
			t.Errorf("a job that never started: %+v %q", r, r.Line())
		}
	}
	if WorstExit(res) != ExitInterrupted {
		t.Errorf("WorstExit = %d", WorstExit(res))
	}
}

func TestWorstExit(t *testing.T) {
	codes := func(cs ...int) []JobResult {
		var out []JobResult
		for _, c := range cs {
			out = append(out, JobResult{Code: c})
		}
		return out
	}
	for _, tc := range []struct {
		codes []int
		want  int
	}{
		{nil, 0}, {[]int{0, 0}, 0}, {[]int{0, 1, 0}, 1}, {[]int{1, 3, 1}, 3}, {[]int{3, 2}, 3},
		{[]int{1, 2}, 2}, {[]int{3, 130, 1}, 130}, {[]int{130, 143}, 143},
	} {
		if got := WorstExit(codes(tc.codes...)); got != tc.want {
			t.Errorf("WorstExit(%v) = %d, want %d", tc.codes, got, tc.want)
		}
	}
}

func TestJobResultLine(t *testing.T) {
	stepErr := Classify(ErrStepFailed, errors.New("step 2 (run: false) failed: exit status 1\nmore detail"))
	for _, tc := range []struct {
		r    JobResult
		want string
	}{
		{JobResult{Name: "a.qcow2", Started: true, Took: 12340 * time.Millisecond, Ran: true, Summary: Summary{OK: 3, Changed: 2}},
			"a.qcow2: ok in 12.3s — 3 ok, 2 changed, 0 skipped, 0 failed, 0 ignored"},
		{JobResult{Name: "b", Started: true, Took: 250 * time.Millisecond, AlreadyApplied: true},
			"b: ok in 250ms — already applied, nothing changed"},
		{JobResult{Name: "c", Started: true, Took: 4 * time.Second, Err: stepErr, Code: 1, Ran: true, Summary: Summary{OK: 1, Failed: 1}},
			"c: failed (exit 1) in 4s — 1 ok, 0 changed, 0 skipped, 1 failed, 0 ignored: step 2 (run: false) failed: exit status 1"},
		{JobResult{Name: "d", Started: true, Took: time.Second, Err: errors.New("no OS found"), Code: 3},
			"d: failed (exit 3) in 1s — no OS found"},
		{JobResult{Name: "e", Started: true, Took: time.Second, Err: context.Canceled, Code: 130},
			"e: interrupted (exit 130) in 1s — context canceled"},
	} {
		if got := tc.r.Line(); got != tc.want {
			t.Errorf("got  %q\nwant %q", got, tc.want)
		}
	}
}

// TestRunManyImageErrors runs the real transaction on disks that cannot be
// opened (no VM is reached): each failure is reported on its own job's
// stderr, prefixed, and classified as an image error.
func TestRunManyImageErrors(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	var stdout, stderr bytes.Buffer
	outs, errs := NewLineSink(&stdout), NewLineSink(&stderr)
	dir := t.TempDir()
	var jobs []Job
	for _, n := range []string{"x.qcow2", "y.raw"} {
		j := Job{Name: n, Disks: []string{filepath.Join(dir, n)}, Out: outs.Prefixed("[" + n + "] "), Err: errs.Prefixed("[" + n + "] ")}
		j.Options.Notices = j.Err
		j.Apply.Events = NewTextEvents(j.Out, false)
		jobs = append(jobs, j)
	}
	rec := &recipes.Recipe{Name: "r"}
	res := RunMany(context.Background(), rec, jobs, 0)
	for i, r := range res {
		if r.Code != ExitImage || r.Ran || r.Image != nil {
			t.Errorf("%s: %+v", r.Name, r)
		}
		if want := "[" + jobs[i].Name + "] imgbake: "; !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
	if stdout.Len() != 0 {
		t.Errorf("stdout: %q", stdout.String())
	}
}

func TestCrowdedCPUs(t *testing.T) {
	for _, tc := range []struct {
		jobs, parallel, cores int
		want                  int
	}{
		{4, 4, 2, 1},  // 8 vCPUs on 2 cores: one each
		{4, 2, 2, 1},  // 4 on 2
		{4, 2, 4, 0},  // 4 on 4: the default
		{1, 4, 2, 0},  // one image alone
		{3, 1, 2, 0},  // one at a time
		{8, 4, 16, 0}, // plenty of cores
	} {
		jobs := make([]Job, tc.jobs)
		crowdedCPUs(jobs, tc.parallel, tc.cores)
		if got := jobs[0].Options.CPUs; got != tc.want {
			t.Errorf("%d jobs, %d at once, %d cores: CPUs %d, want %d", tc.jobs, tc.parallel, tc.cores, got, tc.want)
		}
	}
	jobs := []Job{{Options: Options{CPUs: 2}}, {}}
	crowdedCPUs(jobs, 2, 1)
	if jobs[0].Options.CPUs != 2 || jobs[1].Options.CPUs != 1 {
		t.Errorf("an explicit count was changed: %+v", jobs)
	}
}
