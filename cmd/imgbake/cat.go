package main

import (
	"fmt"

	"github.com/imgbake/imgbake/bake"
	"github.com/imgbake/imgbake/internal/clidocs"
	"github.com/urfave/cli/v2"
)

func catCommand() *cli.Command {
	return &cli.Command{
		Name:        "cat",
		Usage:       "print files of a disk image (read-only)",
		ArgsUsage:   "PATH...",
		Description: clidocs.Text("cat"),
		Flags:       append(diskFlags(), roFlag()),
		Action: func(c *cli.Context) error {
			stdio := stdioOf(c)
			paths, err := imagePathArgs(c)
			if err != nil {
				return err
			}
			op, err := openImage(c.Context, c, stdio, bake.Options{ReadOnly: true})
			if err != nil {
				return err
			}
			failed := false
			for _, p := range paths {
				if _, err := op.Session().ReadFile(c.Context, p, stdio.Out); err != nil {
					if !isPathError(err) {
						op.Abort()
						return err
					}
					fmt.Fprintf(stdio.Err, "imgbake: cat: %v\n", err)
					failed = true
				}
			}
			if err := op.Finish(c.Context, false); err != nil {
				return err
			}
			if failed {
				return withCode(ExitStepFailed, errReported)
			}
			return nil
		},
	}
}
