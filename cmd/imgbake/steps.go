package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/recipes"
)

// stepFunc carries out one recipe operation on the runner's session.
type stepFunc func(ctx context.Context, r *runner, st recipes.Step) (fsops.Result, error)

// stepKind is how cmd runs and documents one recipe op kind. Each kind
// registers itself from its own file (step_*.go), the way recipes
// registers its decoders, so adding a step touches no shared switch.
type stepKind struct {
	example string // one line of YAML with a short comment, for `imgbake steps`
	run     stepFunc
}

var stepKinds = map[string]stepKind{}

func registerStep(kind, example string, run stepFunc) {
	if _, dup := stepKinds[kind]; dup {
		panic("step kind registered twice: " + kind)
	}
	stepKinds[kind] = stepKind{example: example, run: run}
}

func stepsCommand() *cli.Command {
	return &cli.Command{
		Name:  "steps",
		Usage: "list the recipe step kinds with examples",
		Action: func(c *cli.Context) error {
			w := c.App.Writer
			fmt.Fprintln(w, "Common fields on every step: name, when (expression), timeout (e.g. 30s), ignore_errors; run/script also changed_when and creates.")
			for _, k := range recipes.Kinds() {
				ex := stepKinds[k].example
				if ex == "" {
					ex = k + ": ..."
				}
				fmt.Fprintf(w, "  - %s\n", strings.TrimSpace(ex))
			}
			return nil
		},
	}
}
