package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/imgbake/imgbake/internal/clidocs"
)

// checkCommand validates a recipe without booting anything.
func checkCommand() *cli.Command {
	return &cli.Command{
		Name:        "check",
		Usage:       "validate a recipe without touching any image: every problem as file:line:col",
		ArgsUsage:   "RECIPE.yaml",
		Description: clidocs.Text("check"),
		Flags:       varFlags(),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageErr("check: expected exactly one recipe file (got %d arguments)", c.NArg())
			}
			rec, err := loadRecipe(c)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "%s: ok (%d steps, %d vars)\n", c.Args().First(), len(rec.Steps), len(rec.Vars))
			return nil
		},
	}
}
