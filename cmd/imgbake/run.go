package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/imgbake/imgbake/appliance"
	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/recipes"
)

func runCommand() *cli.Command {
	return &cli.Command{
		Name:      "run",
		Usage:     "apply a recipe to a disk image in one appliance boot",
		ArgsUsage: "RECIPE.yaml",
		Description: "Boots one appliance for the image, mounts its filesystems and runs every step in order.\n" +
			"Changes go to a private overlay that is committed only when every step succeeded.",
		Flags: append(diskFlags(),
			&cli.BoolFlag{Name: "in-place", Usage: "write directly to the image (a failure leaves it partly changed)"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write the result to a new image `FILE` and leave the input untouched"},
			&cli.DurationFlag{Name: "timeout", Usage: "limit for the whole run, e.g. 10m"},
			&cli.BoolFlag{Name: "timings", Usage: "print where the time went: build, qemu, kernel, agent, mounts, steps, shutdown, commit"},
			&cli.BoolFlag{Name: "force", Usage: "run every step even if the image records this recipe as applied, or an interrupted run of another"},
		),
		Action: func(c *cli.Context) error {
			stdio := Stdio{In: c.App.Reader, Out: c.App.Writer, Err: c.App.ErrWriter}
			return runAction(c, stdio)
		},
	}
}

func runAction(c *cli.Context, stdio Stdio) error {
	if c.NArg() != 1 {
		return usageErr("run: expected exactly one recipe file after the flags (got %d arguments)", c.NArg())
	}
	// The recipe is validated before any image is touched.
	rec, err := recipes.Load(c.Args().First())
	if err != nil {
		return withCode(ExitUsage, err) // an unreadable recipe is bad input too
	}
	if _, err := checkDisks(c); err != nil {
		return err
	}
	if c.Bool("in-place") && c.String("output") != "" {
		return usageErr("--in-place and --output exclude each other")
	}
	if c.String("output") != "" && len(c.StringSlice("add")) != 1 {
		return usageErr("--output needs exactly one -a disk")
	}
	if out := c.String("output"); out != "" {
		if _, err := os.Stat(out); err == nil {
			return usageErr("--output %s already exists", out)
		}
	}
	ctx := c.Context
	if d := c.Duration("timeout"); d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, d, fmt.Errorf("the run exceeded --timeout %s", d))
		defer cancel()
	}
	start := time.Now()
	op, err := openImages(ctx, c, stdio, openOptions{inPlace: c.Bool("in-place"), output: c.String("output")})
	if err != nil {
		return timeoutCause(ctx, err)
	}
	op.verbosef("appliance ready to run steps: qemu %s, agent ready %s (guest uptime %s)",
		op.sess.Timings.QEMUStarted.Round(time.Millisecond), op.sess.Timings.Ready.Round(time.Millisecond),
		op.sess.Timings.GuestUptime.Round(10*time.Millisecond))
	prev, err := fsops.ReadState(ctx, op.sess)
	if err != nil && !c.Bool("force") {
		_ = op.finish(ctx, false)
		return withCode(ExitImage, err)
	}
	plan, err := planRun(prev, rec, c.Bool("force"))
	if err != nil {
		_ = op.finish(ctx, false)
		return err
	}
	if plan.skipAll {
		if err := op.finish(ctx, false); err != nil {
			return err
		}
		alreadyApplied(stdio.Out, rec, prev)
		return nil
	}
	if plan.resumeMsg != "" {
		fmt.Fprintf(stdio.Err, "imgbake: %s\n", plan.resumeMsg)
	}
	rs := &stateRecorder{sess: op.sess, progressive: op.opts.inPlace,
		st: fsops.NewRun(prev, rec.Name, rec.File, rec.SHA256, len(rec.Steps), appliance.AgentVersion)}
	r := &runner{sess: op.sess, out: stdio.Out, verbose: c.Bool("verbose"), errOut: stdio.Err, state: rs, startAt: plan.startAt}
	tSteps := time.Now()
	sum, runErr := r.run(ctx, rec)
	if runErr == nil {
		runErr = rs.complete(ctx)
	}
	op.timings.steps = time.Since(tSteps)
	if c.Bool("timings") {
		defer func() { op.printTimings(stdio.Err, time.Since(start)) }()
	}
	if runErr != nil {
		_ = op.finish(ctx, false)
		fmt.Fprintf(stdio.Out, "%s: %s in %s — image %s\n", rec.Name, sum, time.Since(start).Round(time.Millisecond), unchangedNote(op.opts))
		return timeoutCause(ctx, runErr)
	}
	if err := op.finish(ctx, true); err != nil {
		return err
	}
	fmt.Fprintf(stdio.Out, "%s: %s in %s\n", rec.Name, sum, time.Since(start).Round(time.Millisecond))
	return nil
}

func unchangedNote(o openOptions) string {
	if o.inPlace {
		return "partly changed (--in-place)"
	}
	return "left unchanged"
}

// timeoutCause turns a deadline from --timeout into a clear step failure.
func timeoutCause(ctx context.Context, err error) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
		if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.DeadlineExceeded) {
			return withCode(ExitStepFailed, cause)
		}
	}
	return err
}

// runner carries out a recipe's steps on one session.
type runner struct {
	sess    *fsops.Session
	out     io.Writer
	errOut  io.Writer
	verbose bool
	state   *stateRecorder
	startAt int // first step to run (resuming an interrupted run); 0 or 1: all
}

type summary struct{ ok, changed, failed, ignored int }

func (s summary) String() string {
	return fmt.Sprintf("%d ok, %d changed, %d failed, %d ignored", s.ok, s.changed, s.failed, s.ignored)
}

// stepError is a failed step, already reported on the output.
type stepError struct {
	step recipes.Step
	err  error
}

func (e *stepError) Error() string {
	return fmt.Sprintf("step %d (%s) failed: %v", e.step.Index, e.step.Title(), e.err)
}
func (e *stepError) Unwrap() error { return e.err }

func (r *runner) run(ctx context.Context, rec *recipes.Recipe) (summary, error) {
	var sum summary
	n := len(rec.Steps)
	width := len(fmt.Sprint(n))
	if err := r.state.begin(ctx); err != nil {
		return sum, err
	}
	for _, st := range rec.Steps {
		if st.Index < r.startAt {
			continue
		}
		t := time.Now()
		res, err := r.step(ctx, st)
		d := time.Since(t)
		status := "ok"
		switch {
		case err != nil && ctx.Err() != nil:
			status = "interrupted"
		case err != nil && st.IgnoreErrors && !errors.Is(err, appliance.ErrApplianceDied):
			status = "failed (ignored)"
		case err != nil:
			status = "failed"
		case res.Changed:
			status = "changed"
		}
		line := fmt.Sprintf("[%*d/%d] %-60s %-8s %s", width, st.Index, n, st.Title(), status, fmtDuration(d))
		if res.Detail != "" && err == nil {
			line += "  (" + res.Detail + ")"
		}
		fmt.Fprintln(r.out, strings.TrimRight(line, " "))
		if err != nil {
			r.reportFailure(st, res, err)
			if ctx.Err() != nil {
				return sum, ctx.Err()
			}
			if errors.Is(err, appliance.ErrApplianceDied) {
				// Not the step's fault and not ignorable: the VM went away.
				sum.failed++
				return sum, withCode(ExitImage, &stepError{st, err})
			}
			if st.IgnoreErrors {
				sum.ignored++
				if err := r.state.stepDone(ctx, st.Index); err != nil {
					return sum, err
				}
				continue
			}
			sum.failed++
			return sum, withCode(ExitStepFailed, &stepError{st, err})
		}
		if res.Changed {
			sum.changed++
		} else {
			sum.ok++
		}
		if err := r.state.stepDone(ctx, st.Index); err != nil {
			return sum, err
		}
	}
	return sum, nil
}

func fmtDuration(d time.Duration) string {
	if d < time.Second {
		return fmt.Sprintf("%dms", d.Milliseconds())
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

// reportFailure prints the rc and the last lines of stderr under the step.
func (r *runner) reportFailure(st recipes.Step, res fsops.Result, err error) {
	var ce *fsops.CommandError
	if errors.As(err, &ce) {
		fmt.Fprintf(r.out, "    %s: %s\n", st.Op.Describe(), ce.Error())
		if tail := lastLinesOf(res.Stderr, 10); tail != "" && !r.verbose {
			for _, l := range strings.Split(tail, "\n") {
				fmt.Fprintf(r.out, "    stderr: %s\n", l)
			}
		}
		return
	}
	fmt.Fprintf(r.out, "    %s: %v\n", st.Op.Describe(), err)
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

// step dispatches one recipe operation to fsops.
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
