package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/imgbake/imgbake/appliance"
	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/recipes"
)

// runner carries out a recipe's steps on one session.
type runner struct {
	sess    fsops.Session
	errOut  io.Writer
	verbose bool
	state   *stateRecorder
	startAt int // first step to run (resuming an interrupted run); 0 or 1: all
	rec     *recipes.Recipe
	facts   recipes.Facts
	events  eventSink
	network bool // the appliance has a network for package steps
}

type summary struct{ ok, changed, failed, skipped, ignored int }

func (s summary) String() string {
	return fmt.Sprintf("%d ok, %d changed, %d skipped, %d failed, %d ignored", s.ok, s.changed, s.skipped, s.failed, s.ignored)
}

// Step statuses, as printed and in --json events.
const (
	statusOK          = "ok"
	statusChanged     = "changed"
	statusSkipped     = "skipped"
	statusFailed      = "failed"
	statusIgnored     = "failed (ignored)"
	statusInterrupted = "interrupted"
)

// stepError is a failed step, already reported on the output.
type stepError struct {
	step recipes.Step
	err  error
}

func (e *stepError) Error() string {
	return fmt.Sprintf("step %d (%s) failed: %v", e.step.Index, e.step.Title(), e.err)
}
func (e *stepError) Unwrap() error { return e.err }

// outcome is what one step did.
type outcome struct {
	status string
	res    fsops.Result
	err    error
	why    string // for skipped steps
	dur    time.Duration
}

func (r *runner) run(ctx context.Context) (summary, error) {
	var sum summary
	if err := r.state.begin(ctx); err != nil {
		return sum, err
	}
	for _, st := range r.rec.Steps {
		if st.Index < r.startAt {
			continue
		}
		r.events.stepStart(st)
		o := r.execute(ctx, st)
		r.events.stepResult(st, o)
		switch o.status {
		case statusOK:
			sum.ok++
		case statusChanged:
			sum.changed++
		case statusSkipped:
			sum.skipped++
		case statusIgnored:
			sum.ignored++
		case statusInterrupted:
			return sum, ctx.Err()
		case statusFailed:
			sum.failed++
			if errors.Is(o.err, appliance.ErrApplianceDied) {
				// Not the step's fault: the VM itself went away.
				return sum, withCode(ExitImage, &stepError{st, o.err})
			}
			return sum, withCode(ExitStepFailed, &stepError{st, o.err})
		}
		if err := r.state.stepDone(ctx, st.Index); err != nil {
			return sum, err
		}
	}
	return sum, nil
}

// execute runs one step: its condition, its templates, creates, the
// operation itself, and changed_when.
func (r *runner) execute(ctx context.Context, st recipes.Step) outcome {
	t := time.Now()
	o := r.evaluate(ctx, st)
	o.dur = time.Since(t)
	if o.err != nil {
		switch {
		case ctx.Err() != nil:
			o.status = statusInterrupted
		case st.IgnoreErrors && !errors.Is(o.err, appliance.ErrApplianceDied):
			o.status = statusIgnored
		default:
			o.status = statusFailed
		}
	}
	return o
}

func (r *runner) evaluate(ctx context.Context, st recipes.Step) outcome {
	data := r.rec.Data(r.facts)
	if st.When != nil {
		ok, err := st.When.Eval(data)
		if err != nil {
			return outcome{err: fmt.Errorf("when: %w", err)}
		}
		if !ok {
			return outcome{status: statusSkipped, why: "when: " + st.When.String()}
		}
	}
	op, err := r.rec.Resolve(st, r.facts)
	if err != nil {
		return outcome{err: err}
	}
	st.Op = op
	if st.Creates != "" {
		exists, err := fsops.Exists(ctx, r.sess, st.Creates)
		if err != nil {
			return outcome{err: fmt.Errorf("creates: %w", err)}
		}
		if exists {
			return outcome{status: statusSkipped, why: st.Creates + " exists"}
		}
	}
	res, err := r.step(ctx, st)
	if err != nil {
		return outcome{res: res, err: err}
	}
	if st.ChangedWhen != nil {
		data["rc"], data["stdout"], data["stderr"] = res.RC, res.Stdout, res.Stderr
		changed, err := st.ChangedWhen.Eval(data)
		if err != nil {
			return outcome{res: res, err: fmt.Errorf("changed_when: %w", err)}
		}
		res.Changed = changed
	}
	status := statusOK
	if res.Changed {
		status = statusChanged
	}
	return outcome{status: status, res: res}
}

// step runs the operation under the step's timeout.
func (r *runner) step(ctx context.Context, st recipes.Step) (fsops.Result, error) {
	if st.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, st.Timeout, fmt.Errorf("%w: timed out after %s (the step's timeout)", errStepTimeout, st.Timeout))
		defer cancel()
	}
	res, err := r.dispatch(ctx, st)
	if err != nil && ctx.Err() != nil {
		if cause := context.Cause(ctx); errors.Is(cause, errStepTimeout) {
			return res, cause
		}
	}
	return res, err
}

var errStepTimeout = errors.New("step timeout")

func (r *runner) dispatch(ctx context.Context, st recipes.Step) (fsops.Result, error) {
	k, ok := stepKinds[st.Op.Kind()]
	if !ok {
		return fsops.Result{}, fmt.Errorf("step kind %q is not implemented", st.Op.Kind())
	}
	return k.run(ctx, r, st)
}

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

// factsFrom turns the agent's inspection into recipe facts.
func factsFrom(info *fsops.OSInfo) recipes.Facts {
	if info == nil {
		return recipes.Facts{}
	}
	return recipes.Facts{OSID: info.ID, VersionID: info.VersionID, Family: recipes.FamilyOf(info.ID, info.IDLike),
		PackageManager: info.PackageManager, Arch: info.Arch, Hostname: info.Hostname}
}
