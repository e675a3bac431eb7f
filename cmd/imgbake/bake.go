package main

import (
	"fmt"
	"os"
	"slices"

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
	images, err := bake.PlanBatch(c.Args().Slice()[1:], c.String("output-dir"), o)
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
		prefix := "[" + im.Name + "] "
		j := bake.Job{Name: im.Name, Disks: []string{im.Path}, Options: o, Timeout: c.Duration("timeout"),
			Out: outs.Prefixed(prefix), Err: errs.Prefixed(prefix)}
		j.Options.Output = im.Output
		j.Options.Logf, j.Options.Notices = verboseFunc(c, j.Err), j.Err
		j.Apply = bake.ApplyOptions{Force: c.Bool("force"), Events: bake.NewTextEvents(j.Out, c.Bool("verbose"))}
		if asJSON {
			j.Out = outs.JSONLines("disk", im.Path)
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
		bake.WriteBatchJSON(stdio.Out, images, results, code, failed)
	} else {
		bake.WriteBatchSummary(stdio.Out, images, results)
	}
	if code == ExitOK {
		return nil
	}
	fmt.Fprintf(stdio.Err, "imgbake: %d of %d images failed (exit %d)\n", failed, len(results), code)
	return withCode(code, fmt.Errorf("%d of %d images failed: %w", failed, len(results), errReported))
}
