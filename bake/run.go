package bake

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/imgbake/imgbake/recipes"
)

// LoadRecipe loads and validates a recipe with the variables given on a
// command line: varsFile (a YAML mapping, may be "") and NAME=VALUE pairs,
// which win over it and over the recipe's own vars. Every problem is
// classified ErrUsage: nothing has been touched.
func LoadRecipe(path, varsFile string, assignments []string) (*recipes.Recipe, error) {
	vars, err := CommandLineVars(varsFile, assignments)
	if err != nil {
		return nil, err
	}
	rec, err := recipes.Load(path, recipes.WithVars(vars))
	if err != nil {
		return nil, Classify(ErrUsage, err) // an unreadable recipe is bad input too
	}
	return rec, nil
}

// CommandLineVars merges a vars file and NAME=VALUE assignments, the
// assignments winning.
func CommandLineVars(varsFile string, assignments []string) (map[string]any, error) {
	vars := map[string]any{}
	if varsFile != "" {
		fv, err := recipes.ReadVarsFile(varsFile)
		if err != nil {
			return nil, Classify(ErrUsage, err)
		}
		maps.Copy(vars, fv)
	}
	for _, kv := range assignments {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, Classify(ErrUsage, fmt.Errorf("--var %q: expected NAME=VALUE", kv))
		}
		vars[k] = v
	}
	return vars, nil
}

// RunRecipe is the whole transaction of `imgbake run`: open the disks,
// apply rec, then commit (or export to Options.Output) only if every step
// succeeded, else discard. The returned Image is finished; it still
// answers PrintTimings (nil when it never opened). Applied says what the
// steps did. Options.Network is turned off when no step needs
// the network.
func RunRecipe(ctx context.Context, disks []string, o Options, rec *recipes.Recipe, ao ApplyOptions) (*Image, Applied, error) {
	start := time.Now()
	o.Network = o.Network && NeedsNetwork(rec)
	if err := Check(disks, o); err != nil {
		return nil, Applied{}, err
	}
	if o.Manifest != "" && len(disks) != 1 && o.Output == "" {
		return nil, Applied{}, Classify(ErrUsage, fmt.Errorf("--manifest needs one -a disk (or --output)"))
	}
	grow, err := recipeDiskSize(disks, &o, rec)
	if err != nil {
		return nil, Applied{}, err
	}
	manifest := startManifest(ctx, disks, o)
	img, err := open(ctx, disks, o, rec)
	if err != nil {
		return nil, Applied{}, timeoutCause(ctx, err)
	}
	if grow {
		if err := img.growRoot(ctx, o.DiskSize); err != nil {
			img.Abort()
			return img, Applied{}, err
		}
	}
	events := ao.Events
	if events == nil {
		events = nopEvents{}
	}
	applied, err := img.Apply(ctx, rec, ao)
	switch {
	case err != nil:
		_ = img.Discard(ctx)
		if applied.Started {
			events.RunEnd(rec, applied.Summary, time.Since(start), err, unchangedNote(o))
		}
		return img, applied, err
	case applied.AlreadyApplied:
		return img, applied, img.Discard(ctx)
	}
	manifest.gatherPackages(ctx, img)
	if err := img.Commit(ctx); err != nil {
		events.RunEnd(rec, applied.Summary, time.Since(start), err, "left unchanged")
		return img, applied, err
	}
	if err := manifest.write(ctx, img, rec, applied); err != nil {
		events.RunEnd(rec, applied.Summary, time.Since(start), err, "written, but its manifest is not")
		return img, applied, err
	}
	events.RunEnd(rec, applied.Summary, time.Since(start), nil, "")
	return img, applied, nil
}

// WithRunTimeout bounds a whole run (--timeout): when it passes, the run
// fails as a step failure naming the limit.
func WithRunTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeoutCause(ctx, d, fmt.Errorf("the run exceeded --timeout %s", d))
}

func unchangedNote(o Options) string {
	if o.InPlace {
		return "partly changed (--in-place)"
	}
	return "left unchanged"
}
