package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/imgbake/imgbake/bake"
	"github.com/imgbake/imgbake/internal/clidocs"
)

func bakeCommand() *cli.Command {
	var flags []cli.Flag
	for _, f := range diskFlags() {
		if !slices.Contains(f.Names(), "add") { // the images are the arguments
			flags = append(flags, f)
		}
	}
	return &cli.Command{
		Name:        "bake",
		Usage:       "apply a recipe to several disk images at once, each in its own appliance",
		ArgsUsage:   "RECIPE.yaml IMAGE...",
		Description: clidocs.Text("bake"),
		Flags: append(append(append(flags,
			&cli.IntFlag{Name: "jobs", Aliases: []string{"j"}, Usage: "run at most `N` appliances at once (default: what the host's free memory and cores allow)"},
			&cli.StringFlag{Name: "output-dir", Usage: "write each result to `DIR`/<image file name> (created if missing; with --output-format, the format's extension) and leave the inputs untouched"},
			&cli.BoolFlag{Name: "in-place", Usage: "write directly to the images (a failure leaves that image partly changed)"},
			&cli.DurationFlag{Name: "timeout", Usage: "limit for each image's run (from its start), e.g. 10m"},
			&cli.BoolFlag{Name: "timings", Usage: "print where each image's time went (as run --timings)"},
			&cli.BoolFlag{Name: "force", Usage: "run every step even if an image records this recipe as applied, or an interrupted run of another"},
			&cli.BoolFlag{Name: "no-network", Usage: "give the appliances no network: package steps must work from what is in the images"},
			&cli.BoolFlag{Name: "json", Usage: `print JSON events (as run --json, each with a "disk" field), one image_result per image and a bake_end`},
		), append(outputFlags(), cacheFlags()...)...), varFlags()...),
		Action: func(c *cli.Context) error { return bakeAction(c, stdioOf(c)) },
	}
}

// bakeImage is one IMAGE argument and what the command made of it.
type bakeImage struct {
	path, name, output string
}

func bakeAction(c *cli.Context, stdio Stdio) error {
	if c.NArg() < 2 {
		return usageErr("bake: expected a recipe file and at least one image (got %d arguments)", c.NArg())
	}
	rec, err := loadRecipe(c)
	if err != nil {
		return err
	}
	o, err := imageOptions(c, stdio, bake.Options{InPlace: c.Bool("in-place"), Network: !c.Bool("no-network"),
		Cache: c.Bool("cache") || c.IsSet("cache-dir"), CacheDir: c.String("cache-dir"), Refresh: c.Bool("refresh")})
	if err != nil {
		return err
	}
	if o, err = outputOptions(c, o); err != nil {
		return err
	}
	o.Progress = nil // the images write their outputs at once: no bar for one of them
	if c.Int("jobs") < 0 {
		return usageErr("--jobs %d: must be at least 1 (0 or none: automatic)", c.Int("jobs"))
	}
	images, err := bakeImages(c.Args().Slice()[1:], c.String("output-dir"), o)
	if err != nil {
		return err
	}
	if dir := c.String("output-dir"); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return withCode(ExitUsage, fmt.Errorf("--output-dir: %w", err))
		}
	}

	outs, errs := bake.NewLineSink(stdio.Out), bake.NewLineSink(stdio.Err)
	asJSON := c.Bool("json")
	jobs := make([]bake.Job, len(images))
	for i, im := range images {
		prefix := "[" + im.name + "] "
		j := bake.Job{Name: im.name, Disks: []string{im.path}, Options: o, Timeout: c.Duration("timeout"),
			Out: outs.Prefixed(prefix), Err: errs.Prefixed(prefix)}
		j.Options.Output = im.output
		j.Options.Logf, j.Options.Notices = verboseFunc(c, j.Err), j.Err
		j.Apply = bake.ApplyOptions{Force: c.Bool("force"), Events: bake.NewTextEvents(j.Out, c.Bool("verbose"))}
		if asJSON {
			j.Out = outs.JSONLines("disk", im.path)
			j.Apply.Events = bake.NewJSONEvents(j.Out)
		}
		if c.Bool("verbose") {
			j.Apply.Live = j.Err
		}
		jobs[i] = j
	}
	parallel := c.Int("jobs")
	if parallel == 0 {
		parallel = bake.DefaultParallel(o.MemoryMiB)
	}
	parallel = min(parallel, len(jobs))
	fmt.Fprintf(stdio.Err, "imgbake: baking %d image%s, %d at a time\n", len(jobs), plural(len(jobs)), parallel)

	results := bake.RunMany(c.Context, rec, jobs, parallel)
	failed := 0
	for i, r := range results {
		if r.Image != nil && c.Bool("timings") {
			r.Image.PrintTimings(jobs[i].Err, r.Took)
		}
		if r.Err != nil {
			failed++
		}
	}
	code := bake.WorstExit(results)
	if asJSON {
		printBakeJSON(stdio, images, results, code, failed)
	} else {
		for i, r := range results {
			line := r.Line()
			if r.Err == nil && images[i].output != "" && !r.AlreadyApplied {
				line += " → " + images[i].output
			}
			fmt.Fprintln(stdio.Out, line)
		}
	}
	if code == ExitOK {
		return nil
	}
	fmt.Fprintf(stdio.Err, "imgbake: %d of %d images failed (exit %d)\n", failed, len(results), code)
	return withCode(code, fmt.Errorf("%d of %d images failed: %w", failed, len(results), errReported))
}

// outputName is an image's file name under --output-dir: its own, or
// with the extension of --output-format when that is given.
func outputName(base, format string) string {
	if format == "" {
		return base
	}
	return strings.TrimSuffix(base, filepath.Ext(base)) + bake.OutputExtension(format)
}

// bakeImages names the images (their file names, or the arguments as
// given when two file names are the same), places their outputs in outDir,
// and refuses what would go wrong for the whole batch before anything is
// touched: an image given twice, two outputs on one path, an existing
// output, --in-place with --output-dir. A missing or unusable image is
// not refused here: it fails on its own, and the others go on.
func bakeImages(args []string, outDir string, o bake.Options) ([]bakeImage, error) {
	count := map[string]int{}
	for _, a := range args {
		count[filepath.Base(a)]++
	}
	images := make([]bakeImage, len(args))
	outputs := map[string]string{}
	for i, a := range args {
		im := bakeImage{path: a, name: filepath.Base(a)}
		if count[im.name] > 1 {
			im.name = a
		}
		if fi, err := os.Stat(a); err == nil {
			for _, prev := range images[:i] {
				if pfi, err := os.Stat(prev.path); err == nil && os.SameFile(fi, pfi) {
					return nil, usageErr("bake: %s and %s are the same image", prev.path, a)
				}
			}
		}
		if outDir != "" {
			im.output = filepath.Join(outDir, outputName(filepath.Base(a), o.OutputFormat))
			if prev, dup := outputs[im.output]; dup {
				return nil, usageErr("bake: --output-dir: %s and %s would both be written to %s", prev, a, im.output)
			}
			outputs[im.output] = a
			if _, err := os.Lstat(im.output); err == nil {
				return nil, usageErr("bake: --output-dir: %s already exists (it is never overwritten)", im.output)
			}
		}
		oi := o
		oi.Output = im.output
		if err := bake.Check([]string{a}, oi); err != nil {
			return nil, err
		}
		images[i] = im
	}
	return images, nil
}

// bakeResult is the JSON line of one image's outcome.
type bakeResult struct {
	Event      string         `json:"event"` // image_result
	Time       time.Time      `json:"time"`
	Disk       string         `json:"disk"`
	Name       string         `json:"name"`
	Status     string         `json:"status"` // ok, already_applied, failed, interrupted, not_started
	ExitCode   int            `json:"exit_code"`
	DurationMS float64        `json:"duration_ms"`
	Summary    map[string]int `json:"summary,omitempty"`
	Output     string         `json:"output,omitempty"`
	Error      string         `json:"error,omitempty"`
}

func printBakeJSON(stdio Stdio, images []bakeImage, results []bake.JobResult, code, failed int) {
	enc := json.NewEncoder(stdio.Out)
	for i, r := range results {
		e := bakeResult{Event: "image_result", Time: time.Now().UTC(), Disk: images[i].path, Name: r.Name, Status: "ok", ExitCode: r.Code,
			DurationMS: float64(r.Took.Microseconds()) / 1000, Output: images[i].output}
		if r.Ran {
			s := r.Summary
			e.Summary = map[string]int{"ok": s.OK, "changed": s.Changed, "skipped": s.Skipped, "failed": s.Failed, "ignored": s.Ignored}
		}
		switch {
		case !r.Started:
			e.Status = "not_started"
		case r.Err != nil && (r.Code == ExitInterrupted || r.Code == ExitTerminated):
			e.Status = "interrupted"
		case r.Err != nil:
			e.Status = "failed"
		case r.AlreadyApplied:
			e.Status, e.Output = "already_applied", ""
		}
		if r.Err != nil {
			e.Error, e.Output = r.Err.Error(), ""
		}
		_ = enc.Encode(e)
	}
	_ = enc.Encode(struct {
		Event    string    `json:"event"`
		Time     time.Time `json:"time"`
		Images   int       `json:"images"`
		Failed   int       `json:"failed"`
		ExitCode int       `json:"exit_code"`
	}{"bake_end", time.Now().UTC(), len(results), failed, code})
}
