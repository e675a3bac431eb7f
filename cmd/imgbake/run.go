package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
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
		Flags: append(append(diskFlags(),
			&cli.BoolFlag{Name: "in-place", Usage: "write directly to the image (a failure leaves it partly changed)"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write the result to a new image `FILE` and leave the input untouched"},
			&cli.DurationFlag{Name: "timeout", Usage: "limit for the whole run, e.g. 10m"},
			&cli.BoolFlag{Name: "timings", Usage: "print where the time went: build, qemu, kernel, agent, mounts, steps, shutdown, commit"},
			&cli.BoolFlag{Name: "force", Usage: "run every step even if the image records this recipe as applied, or an interrupted run of another"},
			&cli.BoolFlag{Name: "no-network", Usage: "give the appliance no network: package steps must work from what is in the image"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON event per line (run start, step start, step result, run end) instead of text"},
		), varFlags()...),
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
	rec, err := loadRecipe(c)
	if err != nil {
		return err
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
	network := !c.Bool("no-network") && slices.ContainsFunc(rec.Steps, func(st recipes.Step) bool { return recipes.NeedsNetwork(st.Op) })
	op, err := openImages(ctx, c, stdio, openOptions{inPlace: c.Bool("in-place"), output: c.String("output"), network: network})
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
	var events eventSink = &humanEvents{out: stdio.Out, verbose: c.Bool("verbose")}
	if c.Bool("json") {
		events = newJSONEvents(stdio.Out)
	}
	if plan.skipAll {
		if err := op.finish(ctx, false); err != nil {
			return err
		}
		events.alreadyApplied(rec, prev)
		return nil
	}
	info, err := op.sess.Inspect(ctx)
	if err != nil {
		_ = op.finish(ctx, false)
		return withCode(ExitImage, fmt.Errorf("gathering facts: %w", err))
	}
	facts := factsFrom(info)
	events.runStart(rec, facts)
	if plan.resumeMsg != "" {
		fmt.Fprintf(stdio.Err, "imgbake: %s\n", plan.resumeMsg)
	}
	rs := &stateRecorder{sess: op.sess, progressive: op.opts.inPlace,
		st: fsops.NewRun(prev, rec.Name, rec.File, rec.SHA256, len(rec.Steps), appliance.AgentVersion)}
	r := &runner{sess: op.sess, verbose: c.Bool("verbose"), errOut: stdio.Err, state: rs, startAt: plan.startAt,
		rec: rec, facts: facts, events: events, network: network}
	tSteps := time.Now()
	sum, runErr := r.run(ctx)
	if runErr == nil {
		runErr = rs.complete(ctx)
	}
	op.timings.steps = time.Since(tSteps)
	if c.Bool("timings") {
		defer func() { op.printTimings(stdio.Err, time.Since(start)) }()
	}
	if runErr != nil {
		_ = op.finish(ctx, false)
		runErr = timeoutCause(ctx, runErr)
		events.runEnd(rec, sum, time.Since(start), runErr, unchangedNote(op.opts))
		return runErr
	}
	if err := op.finish(ctx, true); err != nil {
		events.runEnd(rec, sum, time.Since(start), err, "left unchanged")
		return err
	}
	events.runEnd(rec, sum, time.Since(start), nil, "")
	return nil
}

// varFlags set recipe variables from the command line.
func varFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{Name: "var", Usage: "set a recipe variable `NAME=VALUE` (repeatable; wins over --vars-file and the recipe's vars)"},
		&cli.StringFlag{Name: "vars-file", Usage: "read recipe variables from a YAML mapping in `FILE`"},
	}
}

// loadRecipe loads and validates the recipe argument with the command
// line's variables. Every problem is bad input: exit 2, nothing touched.
func loadRecipe(c *cli.Context) (*recipes.Recipe, error) {
	vars := map[string]any{}
	if f := c.String("vars-file"); f != "" {
		fv, err := recipes.ReadVarsFile(f)
		if err != nil {
			return nil, withCode(ExitUsage, err)
		}
		maps.Copy(vars, fv)
	}
	for _, kv := range c.StringSlice("var") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usageErr("--var %q: expected NAME=VALUE", kv)
		}
		vars[k] = v
	}
	rec, err := recipes.Load(c.Args().First(), recipes.WithVars(vars))
	if err != nil {
		return nil, withCode(ExitUsage, err) // an unreadable recipe is bad input too
	}
	return rec, nil
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
