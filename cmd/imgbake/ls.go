package main

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/imgbake/imgbake/bake"
	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/internal/clidocs"
	"github.com/imgbake/imgbake/internal/report"
)

func lsCommand() *cli.Command {
	return &cli.Command{
		Name:        "ls",
		Usage:       "list a directory of a disk image (read-only)",
		ArgsUsage:   "PATH...",
		Description: clidocs.Text("ls"),
		Flags: append(diskFlags(),
			&cli.BoolFlag{Name: "long", Aliases: []string{"l"}, Usage: "long listing"},
			&cli.BoolFlag{Name: "recursive", Aliases: []string{"R"}, Usage: "list subdirectories recursively"},
			roFlag(),
		),
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
			l := report.NewLister(c.Context, op.Session(), stdio.Out, stdio.Err, c.Bool("long"), c.Bool("recursive"))
			var failed error
			for _, p := range paths {
				if err := l.List(p, len(paths) > 1 || c.Bool("recursive")); err != nil {
					if !isPathError(err) {
						op.Abort()
						return err
					}
					fmt.Fprintf(stdio.Err, "imgbake: ls: %v\n", err)
					failed = err
				}
			}
			if err := op.Finish(c.Context, false); err != nil {
				return err
			}
			if failed != nil || l.Failed() {
				return withCode(ExitStepFailed, errReported)
			}
			return nil
		},
	}
}

// isPathError tells a problem with one path (reported, the command goes on
// with the next) from an appliance failure.
func isPathError(err error) bool {
	return fsops.IsPathError(err) || errors.Is(err, fsops.ErrTooDeep)
}
