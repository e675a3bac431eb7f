package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/imgbake/imgbake/internal/clidocs"
	"github.com/imgbake/imgbake/steps"
)

func stepsCommand() *cli.Command {
	return &cli.Command{
		Name:        "steps",
		Usage:       "list the recipe step kinds with examples",
		Description: clidocs.Text("steps"),
		Flags:       []cli.Flag{&cli.BoolFlag{Name: "markdown", Usage: "print the catalog as a Markdown table (as in the README)"}},
		Action: func(c *cli.Context) error {
			w := c.App.Writer
			if c.Bool("markdown") {
				fmt.Fprint(w, steps.Reference())
				return nil
			}
			fmt.Fprintf(w, "Common fields on every step: name, when (expression), timeout (e.g. 30s), ignore_errors, cache (false: never from the layer cache); %s also changed_when and creates.\n",
				strings.Join(steps.CommandKinds(), "/"))
			for _, k := range steps.All() {
				fmt.Fprintf(w, "  - %s\n", strings.TrimSpace(k.Example))
			}
			return nil
		},
	}
}
