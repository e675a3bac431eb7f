package bake

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/imgbake/imgbake/appliance"
	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/recipes"
	"github.com/imgbake/imgbake/steps"
)

// ApplyOptions tune Apply.
type ApplyOptions struct {
	Force  bool      // run every step even if the image records the recipe as applied
	Events Events    // progress reports; nil reports nothing
	Live   io.Writer // commands' output as it comes (-v); nil keeps it captured only
}

// Applied is what Apply did.
type Applied struct {
	Summary        Summary
	AlreadyApplied bool // the image records this recipe as complete: nothing ran
	Started        bool // the run started (Events.RunStart): its end is for the caller to report
	Facts          recipes.Facts
	Steps          []StepRecord // each step that ran or was cached, in order
}

// StepRecord is how one step ended, for a manifest.
type StepRecord struct {
	Index   int     `json:"index"`
	Name    string  `json:"name,omitempty"`
	Kind    string  `json:"kind"`
	Status  string  `json:"status"`
	Detail  string  `json:"detail,omitempty"`
	Error   string  `json:"error,omitempty"`
	Seconds float64 `json:"seconds"`
}

func recordOf(st recipes.Step, o Outcome) StepRecord {
	r := StepRecord{Index: st.Index, Name: st.Name, Kind: st.Op.Kind(), Status: o.Status,
		Detail: o.Result.Detail, Seconds: o.Took.Seconds()}
	if r.Detail == "" {
		r.Detail = o.Why
	}
	if o.Err != nil {
		r.Error = o.Err.Error()
	}
	return r
}

// Summary counts step outcomes.
type Summary struct{ OK, Changed, Failed, Skipped, Ignored, Cached int }

func (s Summary) String() string {
	out := fmt.Sprintf("%d ok, %d changed, %d skipped, %d failed, %d ignored", s.OK, s.Changed, s.Skipped, s.Failed, s.Ignored)
	if s.Cached > 0 {
		out += fmt.Sprintf(", %d cached", s.Cached)
	}
	return out
}

// Step statuses, as printed and in --json events.
const (
	StatusOK          = "ok"
	StatusChanged     = "changed"
	StatusSkipped     = "skipped"
	StatusFailed      = "failed"
	StatusIgnored     = "failed (ignored)"
	StatusInterrupted = "interrupted"
	StatusCached      = "cached" // the step-layer cache held the image after it
)

// StepError is a failed step, already reported through the events.
type StepError struct {
	Step recipes.Step
	Err  error
}

func (e *StepError) Error() string {
	return fmt.Sprintf("step %d (%s) failed: %v", e.Step.Index, e.Step.Title(), e.Err)
}
func (e *StepError) Unwrap() error { return e.Err }

// Outcome is what one step did.
type Outcome struct {
	Status string
	Result fsops.Result
	Err    error
	Why    string // for skipped steps
	Took   time.Duration
}

// NeedsNetwork reports whether any step of rec fetches packages, so the
// appliance should get a network.
func NeedsNetwork(rec *recipes.Recipe) bool {
	return slices.ContainsFunc(rec.Steps, func(st recipes.Step) bool { return steps.NeedsNetwork(st.Op) })
}

// Apply runs rec's steps on the open image in order, following the
// run-once rules (README "Run-once state") and recording the run in the
// image's state file. The first failing step stops the run (unless it
// ignores errors) with an error classified ErrStepFailed, or ErrImage when
// the appliance itself died. Apply neither commits nor discards: that is
// the caller's choice, so a session can apply several recipes.
func (img *Image) Apply(ctx context.Context, rec *recipes.Recipe, o ApplyOptions) (Applied, error) {
	var out Applied
	events := o.Events
	if events == nil {
		events = nopEvents{}
	}
	prev, err := fsops.ReadState(ctx, img.ops)
	if err != nil && !o.Force {
		return out, Classify(ErrImage, err)
	}
	plan, err := planRun(prev, rec, o.Force)
	if err != nil {
		return out, err
	}
	if plan.skipAll {
		events.AlreadyApplied(rec, prev)
		out.AlreadyApplied = true
		return out, nil
	}
	if c := img.cache; c != nil && c.hit > 0 {
		// The appliance runs on the cached layers: the run's facts are
		// the input's, as recorded when the layers were made.
		out.Facts = *c.facts
	} else {
		info, err := img.ops.Inspect(ctx)
		if err != nil {
			return out, Classify(ErrImage, fmt.Errorf("gathering facts: %w", err))
		}
		out.Facts = FactsOf(info)
	}
	if img.cache != nil {
		if err := img.cache.begin(out.Facts, rec); err != nil {
			return out, err
		}
	}
	events.RunStart(rec, out.Facts)
	out.Started = true
	if plan.resumeMsg != "" {
		fmt.Fprintf(img.notices, "imgbake: %s\n", plan.resumeMsg)
	}
	rs := &stateRecorder{sess: img.ops, progressive: img.opts.InPlace,
		st: fsops.NewRun(prev, rec.Name, rec.File, rec.SHA256, len(rec.Steps), Version)}
	r := &runner{env: steps.Env{Session: img.ops, Facts: out.Facts, Network: img.opts.Network, Live: o.Live},
		state: rs, startAt: plan.startAt, rec: rec, events: events}
	if c := img.cache; c != nil {
		for _, st := range rec.Steps[:c.hit] {
			events.StepStart(st)
			o := Outcome{Status: StatusCached, Why: "layer " + shortKey(c.keys[st.Index-1])}
			events.StepResult(st, o)
			out.Steps = append(out.Steps, recordOf(st, o))
			out.Summary.Cached++
		}
		r.startAt = max(r.startAt, c.hit+1)
		r.after = img.cacheStep
	}
	t := time.Now()
	sum, err := r.run(ctx)
	out.Steps = append(out.Steps, r.records...)
	sum.Cached = out.Summary.Cached
	out.Summary = sum
	if err == nil {
		err = rs.complete(ctx)
	}
	img.timings.steps += time.Since(t)
	return out, timeoutCause(ctx, err)
}

// runner carries out a recipe's steps on one session.
type runner struct {
	env     steps.Env
	state   *stateRecorder
	startAt int // first step to run (resuming an interrupted run); 0 or 1: all
	rec     *recipes.Recipe
	events  Events
	after   func(ctx context.Context, st recipes.Step, o Outcome) error // each step's end (the layer cache); nil: nothing
	records []StepRecord
}

func (r *runner) run(ctx context.Context) (Summary, error) {
	var sum Summary
	if err := r.state.begin(ctx); err != nil {
		return sum, Classify(ErrImage, err)
	}
	for _, st := range r.rec.Steps {
		if st.Index < r.startAt {
			continue
		}
		r.events.StepStart(st)
		o := r.execute(ctx, st)
		r.events.StepResult(st, o)
		r.records = append(r.records, recordOf(st, o))
		if r.after != nil {
			if err := r.after(ctx, st, o); err != nil {
				return sum, err
			}
		}
		switch o.Status {
		case StatusOK:
			sum.OK++
		case StatusChanged:
			sum.Changed++
		case StatusSkipped:
			sum.Skipped++
		case StatusIgnored:
			sum.Ignored++
		case StatusInterrupted:
			return sum, ctx.Err()
		case StatusFailed:
			sum.Failed++
			if errors.Is(o.Err, appliance.ErrApplianceDied) {
				// Not the step's fault: the VM itself went away.
				return sum, Classify(ErrImage, &StepError{st, o.Err})
			}
			return sum, Classify(ErrStepFailed, &StepError{st, o.Err})
		}
		if err := r.state.stepDone(ctx, st.Index); err != nil {
			return sum, Classify(ErrImage, err)
		}
	}
	return sum, nil
}

// execute runs one step: its condition, its templates, creates, the
// operation itself, and changed_when.
func (r *runner) execute(ctx context.Context, st recipes.Step) Outcome {
	t := time.Now()
	o := r.evaluate(ctx, st)
	o.Took = time.Since(t)
	if o.Err != nil {
		switch {
		case ctx.Err() != nil:
			o.Status = StatusInterrupted
		case st.IgnoreErrors && !errors.Is(o.Err, appliance.ErrApplianceDied):
			o.Status = StatusIgnored
		default:
			o.Status = StatusFailed
		}
	}
	return o
}

func (r *runner) evaluate(ctx context.Context, st recipes.Step) Outcome {
	data := r.rec.Data(r.env.Facts)
	if st.When != nil {
		ok, err := st.When.Eval(data)
		if err != nil {
			return Outcome{Err: fmt.Errorf("when: %w", err)}
		}
		if !ok {
			return Outcome{Status: StatusSkipped, Why: "when: " + st.When.String()}
		}
	}
	op, err := r.rec.Resolve(st, r.env.Facts)
	if err != nil {
		return Outcome{Err: err}
	}
	st.Op = op
	if st.Creates != "" {
		exists, err := fsops.Exists(ctx, r.env.Session, st.Creates)
		if err != nil {
			return Outcome{Err: fmt.Errorf("creates: %w", err)}
		}
		if exists {
			return Outcome{Status: StatusSkipped, Why: st.Creates + " exists"}
		}
	}
	res, err := r.step(ctx, st, data)
	if err != nil {
		return Outcome{Result: res, Err: err}
	}
	if st.ChangedWhen != nil {
		data["rc"], data["stdout"], data["stderr"] = res.RC, res.Stdout, res.Stderr
		changed, err := st.ChangedWhen.Eval(data)
		if err != nil {
			return Outcome{Result: res, Err: fmt.Errorf("changed_when: %w", err)}
		}
		res.Changed = changed
	}
	status := StatusOK
	if res.Changed {
		status = StatusChanged
	}
	return Outcome{Status: status, Result: res}
}

// step runs the operation under the step's timeout.
func (r *runner) step(ctx context.Context, st recipes.Step, data map[string]any) (fsops.Result, error) {
	if st.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, st.Timeout, fmt.Errorf("%w: timed out after %s (the step's timeout)", errStepTimeout, st.Timeout))
		defer cancel()
	}
	env := r.env
	env.Data = data
	res, err := steps.Apply(ctx, env, st)
	if err != nil && ctx.Err() != nil {
		if cause := context.Cause(ctx); errors.Is(cause, errStepTimeout) {
			return res, cause
		}
	}
	return res, err
}

var errStepTimeout = errors.New("step timeout")

// timeoutCause turns a deadline set by the caller with a cause (--timeout)
// into a clear step failure naming it.
func timeoutCause(ctx context.Context, err error) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
		if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.DeadlineExceeded) {
			return Classify(ErrStepFailed, cause)
		}
	}
	return err
}

// fmtDuration formats a step's duration: milliseconds below a second.
func fmtDuration(d time.Duration) string {
	if d < time.Second {
		return fmt.Sprintf("%dms", d.Milliseconds())
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

func lastLinesOf(s string, n int) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return ""
	}
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// FactsOf turns the agent's inspection into recipe facts.
func FactsOf(info *fsops.OSInfo) recipes.Facts {
	if info == nil {
		return recipes.Facts{}
	}
	return recipes.Facts{OSID: info.ID, VersionID: info.VersionID, Family: info.Family,
		PackageManager: info.PackageManager, Arch: info.Arch, Hostname: info.Hostname}
}

// shortKey is a cache key as shown to people.
func shortKey(k string) string {
	if len(k) > 12 {
		return k[:12]
	}
	return k
}
