package bake

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/imgbake/imgbake/recipes"
)

// Many images: RunMany runs one recipe on several images, each in its own
// appliance and its own transaction (RunRecipe), at most a given number at
// a time. A job's failure is its own: it neither stops nor changes the
// others. Its output goes through line writers of a shared LineSink, so
// the lines of concurrent jobs never interleave inside a line.

// Job is one image of RunMany.
type Job struct {
	Name    string       // the image's label: prefixes its lines, names it in the summary
	Disks   []string     // the disks of this image (one, for `imgbake bake`)
	Options Options      // how to open it; Output set for --output-dir
	Apply   ApplyOptions // its events and live output (on Out and Err)
	Timeout time.Duration
	// Out and Err are the job's writers on the shared sinks, flushed when
	// its run is over (a last line without a newline is completed). Either
	// may be nil.
	Out, Err *LineWriter
}

// JobResult is how one image's run ended.
type JobResult struct {
	Name           string
	Started        bool          // false: cancelled before its turn came
	Err            error         // nil when the recipe was applied (or already was)
	Code           int           // ExitCode(Err)
	Took           time.Duration // from its start, not counting the wait for a slot
	Summary        Summary       // the step outcomes, when the steps ran
	Ran            bool          // the run got to its end report (Summary is meaningful)
	AlreadyApplied bool
	Image          *Image // the finished image (for PrintTimings); nil when it never opened
}

// Line is the image's summary line: "NAME: ok in 12.3s — 3 ok, 2 changed, ...",
// "NAME: failed (exit 1) in 4.5s — ...: step 2 (...) failed: ...".
func (r JobResult) Line() string {
	took := r.Took.Round(100 * time.Millisecond).String()
	if r.Took < time.Second {
		took = r.Took.Round(time.Millisecond).String()
	}
	switch {
	case !r.Started:
		return fmt.Sprintf("%s: not started (exit %d)", r.Name, r.Code)
	case r.Err == nil && r.AlreadyApplied:
		return fmt.Sprintf("%s: ok in %s — already applied, nothing changed", r.Name, took)
	case r.Err == nil:
		return fmt.Sprintf("%s: ok in %s — %s", r.Name, took, r.Summary)
	}
	status := "failed"
	if r.Code == ExitInterrupted || r.Code == ExitTerminated {
		status = "interrupted"
	}
	msg := headLine(r.Err.Error())
	if r.Ran {
		msg = r.Summary.String() + ": " + msg
	}
	return fmt.Sprintf("%s: %s (exit %d) in %s — %s", r.Name, status, r.Code, took, msg)
}

func headLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}

// WorstExit is the exit code of a batch: ExitOK when every image succeeded,
// else the most serious failure, in this order: an interruption (130, 143,
// or any other code above 3), an image or appliance error (3), bad usage
// (2), a failed step (1).
func WorstExit(results []JobResult) int {
	rank := func(code int) int {
		switch code {
		case ExitOK:
			return 0
		case ExitStepFailed:
			return 1
		case ExitUsage:
			return 2
		case ExitImage:
			return 3
		}
		return 4
	}
	worst := ExitOK
	for _, r := range results {
		if rank(r.Code) > rank(worst) || (rank(r.Code) == rank(worst) && r.Code > worst) {
			worst = r.Code
		}
	}
	return worst
}

// RunMany applies rec to every job's image, each with RunRecipe in its own
// appliance, at most parallel at a time (parallel < 1: DefaultParallel of
// the first job's memory), and returns their results in the jobs' order. A
// cancelled ctx stops the running jobs (each discards its overlay, as
// RunRecipe does) and starts no more.
func RunMany(ctx context.Context, rec *recipes.Recipe, jobs []Job, parallel int) []JobResult {
	if parallel < 1 {
		mem := 0
		if len(jobs) > 0 {
			mem = jobs[0].Options.MemoryMiB
		}
		parallel = DefaultParallel(mem)
	}
	crowdedCPUs(jobs, parallel, runtime.NumCPU())
	return schedule(ctx, jobs, parallel, func(ctx context.Context, j Job) JobResult { return runJob(ctx, rec, j) })
}

// schedule runs run for every job, at most parallel at once, in the jobs'
// order; a panic in one job is that job's error.
func schedule(ctx context.Context, jobs []Job, parallel int, run func(context.Context, Job) JobResult) []JobResult {
	parallel = max(parallel, 1)
	results := make([]JobResult, len(jobs))
	slots := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i, j := range jobs {
		if ctx.Err() == nil {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
			}
		}
		if err := ctx.Err(); err != nil {
			// Its turn never came.
			results[i] = JobResult{Name: j.Name, Err: err, Code: ExitCode(err)}
			j.flush()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			results[i] = runGuarded(ctx, j, run)
		}()
	}
	wg.Wait()
	return results
}

func runGuarded(ctx context.Context, j Job, run func(context.Context, Job) JobResult) (res JobResult) {
	start := time.Now()
	defer func() {
		if p := recover(); p != nil {
			err := Classify(ErrImage, fmt.Errorf("internal error: %v", p))
			if j.Err != nil {
				fmt.Fprintf(j.Err, "imgbake: internal error: %v\n%s", p, debug.Stack())
			}
			res = JobResult{Name: j.Name, Started: true, Err: err, Code: ExitCode(err), Took: time.Since(start)}
		}
		j.flush()
	}()
	res = run(ctx, j)
	res.Name, res.Started = j.Name, true
	if res.Took == 0 {
		res.Took = time.Since(start)
	}
	return res
}

func (j Job) flush() {
	if j.Out != nil {
		j.Out.Flush()
	}
	if j.Err != nil {
		j.Err.Flush()
	}
}

// runJob is one image's transaction.
func runJob(ctx context.Context, rec *recipes.Recipe, j Job) JobResult {
	start := time.Now()
	ctx, cancel := WithRunTimeout(ctx, j.Timeout)
	defer cancel()
	img, applied, err := RunRecipe(ctx, j.Disks, j.Options, rec, j.Apply)
	if err != nil && j.Err != nil {
		fmt.Fprintf(j.Err, "imgbake: %v\n", err) // as `imgbake run` reports it
	}
	return JobResult{Err: err, Code: ExitCode(err), Took: time.Since(start), Summary: applied.Summary,
		Ran: applied.Started, AlreadyApplied: applied.AlreadyApplied, Image: img}
}

// Default parallelism.

// qemuOverheadMiB is what one appliance costs the host beyond its guest
// memory: qemu itself, TCG's translation cache, the overlay's page cache.
const qemuOverheadMiB = 150

// DefaultParallel is how many appliances of memoryMiB (0: 512) the host can
// run at once: as many as MemAvailable holds with qemu's overhead, and at
// most one per usable CPU, at least 1. Under TCG a run is CPU-bound (one
// alone uses about as much CPU time as wall time), and appliances beyond
// the cores only add contention: measured with 4 images on 2 cores,
// --jobs 4 took as long as --jobs 2 with ~70 % more CPU per image.
func DefaultParallel(memoryMiB int) int {
	b, _ := os.ReadFile("/proc/meminfo")
	return defaultParallel(string(b), runtime.NumCPU(), memoryMiB)
}

func defaultParallel(meminfo string, cpus, memoryMiB int) int {
	if memoryMiB <= 0 {
		memoryMiB = 512
	}
	n := max(cpus, 1)
	if avail, ok := memAvailableKiB(meminfo); ok {
		n = min(n, int(avail/1024/int64(memoryMiB+qemuOverheadMiB)))
	}
	return max(n, 1)
}

// memAvailableKiB reads MemAvailable from /proc/meminfo's text.
func memAvailableKiB(meminfo string) (int64, bool) {
	for _, l := range strings.Split(meminfo, "\n") {
		v, ok := strings.CutPrefix(l, "MemAvailable:")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			return 0, false
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, false
		}
		if len(f) > 1 && f[1] != "kB" {
			return 0, false
		}
		return n, true
	}
	return 0, false
}

// Output: whole lines of concurrent jobs on one stream.

// LineSink is one output stream shared by concurrent jobs: their writers
// hand it whole lines only, under one mutex.
type LineSink struct {
	mu sync.Mutex
	w  io.Writer
}

// NewLineSink shares w between the writers made by Prefixed and JSONLines.
func NewLineSink(w io.Writer) *LineSink { return &LineSink{w: w} }

// maxPartial is how long a line without a newline may grow before it is
// written anyway (as a line of its own).
const maxPartial = 64 << 10

// LineWriter collects what one job writes and passes it to its sink line
// by line, each transformed (prefixed, or tagged JSON), so lines of
// different writers never mix. It is safe for concurrent use; goroutines
// sharing one writer should write whole lines (a partial line is completed
// by whatever is written next). Flush completes and writes a last partial
// line.
type LineWriter struct {
	sink *LineSink
	line func(dst, line []byte) []byte // appends the transformed line, without its newline
	mu   sync.Mutex
	buf  []byte
}

// Prefixed writes every line with prefix in front, e.g. "[web.qcow2] ".
func (s *LineSink) Prefixed(prefix string) *LineWriter {
	p := []byte(prefix)
	return &LineWriter{sink: s, line: func(dst, l []byte) []byte { return append(append(dst, p...), l...) }}
}

// JSONLines writes JSON object lines (as NewJSONEvents prints them) with
// the field key: value added in front of the others; a line that is not a
// JSON object passes unchanged.
func (s *LineSink) JSONLines(key, value string) *LineWriter {
	k, _ := json.Marshal(key)
	v, _ := json.Marshal(value)
	field := append(append(append([]byte{}, k...), ':'), v...)
	return &LineWriter{sink: s, line: func(dst, l []byte) []byte {
		t := bytes.TrimSpace(l)
		if len(t) < 2 || t[0] != '{' || t[len(t)-1] != '}' {
			return append(dst, l...)
		}
		dst = append(append(dst, '{'), field...)
		if rest := bytes.TrimSpace(t[1:]); len(rest) > 1 {
			dst = append(dst, ',')
		}
		return append(dst, t[1:]...)
	}}
}

func (w *LineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	var out []byte
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			if len(w.buf) < maxPartial {
				break
			}
			i = len(w.buf)
		}
		out = append(w.line(out, w.buf[:i]), '\n')
		w.buf = w.buf[min(i+1, len(w.buf)):]
	}
	if len(w.buf) == 0 {
		w.buf = nil
	}
	if len(out) == 0 {
		return len(p), nil
	}
	if err := w.sink.write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Flush writes what is left of a line without its newline, completing it.
func (w *LineWriter) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) == 0 {
		return nil
	}
	out := append(w.line(nil, w.buf), '\n')
	w.buf = nil
	return w.sink.write(out)
}

func (s *LineSink) write(b []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.w.Write(b)
	return err
}

// crowdedCPUs gives every job one vCPU (unless it asks for a count) when
// the appliances running at once would have more vCPUs than the host has
// cores: under TCG the extra vCPU threads only add contention (measured:
// 4 images on 2 cores, ~25 % less CPU per image and 4.2x → 3.0x of one
// image's wall time).
func crowdedCPUs(jobs []Job, parallel, cores int) {
	atOnce := min(parallel, len(jobs))
	if atOnce < 2 || 2*atOnce <= cores {
		return
	}
	for i := range jobs {
		if jobs[i].Options.CPUs == 0 {
			jobs[i].Options.CPUs = 1
		}
	}
}
