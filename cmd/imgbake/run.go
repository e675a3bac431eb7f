package main

import (
	"io"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/imgbake/imgbake/bake"
	"github.com/imgbake/imgbake/internal/clidocs"
	"github.com/imgbake/imgbake/recipes"
)

func runCommand() *cli.Command {
	return &cli.Command{
		Name:        "run",
		Usage:       "apply a recipe to a disk image in one appliance boot",
		ArgsUsage:   "RECIPE.yaml",
		Description: clidocs.Text("run"),
		Flags: append(append(diskFlags(),
			&cli.BoolFlag{Name: "in-place", Usage: "write directly to the image (a failure leaves it partly changed)"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write the result to a new image `FILE` and leave the input untouched"},
			&cli.DurationFlag{Name: "timeout", Usage: "limit for the whole run, e.g. 10m"},
			&cli.BoolFlag{Name: "timings", Usage: "print where the time went: build, qemu, kernel, agent, mounts, steps, shutdown, commit"},
			&cli.BoolFlag{Name: "force", Usage: "run every step even if the image records this recipe as applied, or an interrupted run of another"},
			&cli.BoolFlag{Name: "no-network", Usage: "give the appliance no network: package steps must work from what is in the image"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON event per line (run start, step start, step result, run end) instead of text"},
			&cli.StringFlag{Name: "manifest", Usage: "write a JSON manifest to `FILE`: input and output sha256, the recipe, every step's result, the installed packages"},
		), append(append(outputFlags(), cacheFlags()...), varFlags()...)...),
		Action: func(c *cli.Context) error { return runAction(c, stdioOf(c)) },
	}
}

func runAction(c *cli.Context, stdio Stdio) error {
	if c.NArg() != 1 {
		return usageErr("run: expected exactly one recipe file (got %d arguments: %q)", c.NArg(), c.Args().Slice())
	}
	// The recipe and the flags are validated before any image is touched.
	rec, err := loadRecipe(c)
	if err != nil {
		return err
	}
	o, err := outputOptions(c, bake.Options{InPlace: c.Bool("in-place"), Output: c.String("output"), Network: !c.Bool("no-network"),
		Cache: c.Bool("cache") || c.IsSet("cache-dir"), CacheDir: c.String("cache-dir"), Refresh: c.Bool("refresh"),
		Manifest: c.String("manifest")})
	if err != nil {
		return err
	}
	disks, o, err := diskOptions(c, stdio, o)
	if err != nil {
		return err
	}
	ctx, cancel := bake.WithRunTimeout(c.Context, c.Duration("timeout"))
	defer cancel()
	start := time.Now()
	img, _, err := bake.RunRecipe(ctx, disks, o, rec, bake.ApplyOptions{Force: c.Bool("force"),
		Events: events(c, stdio, c.Bool("json")), Live: liveOutput(c, stdio)})
	if img != nil && c.Bool("timings") {
		img.PrintTimings(stdio.Err, time.Since(start))
	}
	return err
}

// events reports a run as text or, with --json, as JSON lines.
func events(c *cli.Context, stdio Stdio, asJSON bool) bake.Events {
	if asJSON {
		return bake.NewJSONEvents(stdio.Out)
	}
	return bake.NewTextEvents(stdio.Out, c.Bool("verbose"))
}

// liveOutput is where commands' output streams with -v.
func liveOutput(c *cli.Context, stdio Stdio) io.Writer {
	if c.Bool("verbose") {
		return stdio.Err
	}
	return nil
}

// cacheFlags turn on the step-layer cache.
func cacheFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "cache", Usage: "step-layer cache: skip the longest prefix of steps already run on this input, keep a layer after each changed step"},
		&cli.StringFlag{Name: "cache-dir", Usage: "layer cache `DIR` (default: layers/ in the imgbake cache directory); implies --cache"},
		&cli.BoolFlag{Name: "refresh", Usage: "with --cache: run every step and replace the cached layers"},
	}
}

// varFlags set recipe variables from the command line.
func varFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{Name: "var", Usage: "set a recipe variable `NAME=VALUE` (repeatable; wins over --vars-file and the recipe's vars)"},
		&cli.StringFlag{Name: "vars-file", Usage: "read recipe variables from a YAML mapping in `FILE`"},
	}
}

// loadRecipe loads and validates the recipe argument with the command
// line's variables.
func loadRecipe(c *cli.Context) (*recipes.Recipe, error) {
	return bake.LoadRecipe(c.Args().First(), c.String("vars-file"), c.StringSlice("var"))
}
