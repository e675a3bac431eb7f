package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/imgbake/imgbake/steps"
)

func stepsCommand() *cli.Command {
	return &cli.Command{
		Name:  "steps",
		Usage: "list the recipe step kinds with examples",
		Action: func(c *cli.Context) error {
			w := c.App.Writer
			fmt.Fprintln(w, "Common fields on every step: name, when (expression), timeout (e.g. 30s), ignore_errors; run/script also changed_when and creates.")
			for _, k := range steps.All() {
				fmt.Fprintf(w, "  - %s\n", strings.TrimSpace(k.Example))
			}
			return nil
		},
	}
}
