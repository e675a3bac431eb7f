package main

import (
	"encoding/json"

	"github.com/urfave/cli/v2"

	"github.com/imgbake/imgbake/bake"
	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/internal/clidocs"
	"github.com/imgbake/imgbake/internal/report"
)

func inspectCommand() *cli.Command {
	return &cli.Command{
		Name:        "inspect",
		Usage:       "show the operating system, filesystems and mountpoints of a disk image (read-only)",
		Description: clidocs.Text("inspect"),
		Flags:       append(diskFlags(), &cli.BoolFlag{Name: "json", Usage: "print one JSON object"}),
		Action: func(c *cli.Context) error {
			stdio := stdioOf(c)
			if c.NArg() != 0 {
				return usageErr("inspect takes no arguments (got %q)", c.Args().Slice())
			}
			op, err := openImage(c.Context, c, stdio, bake.Options{ReadOnly: true})
			if err != nil {
				return err
			}
			rep, err := fsops.Inspect(c.Context, op.Session(), op.Mounts())
			if err != nil {
				op.Abort()
				return err
			}
			if err := op.Finish(c.Context, false); err != nil {
				return err
			}
			if c.Bool("json") {
				enc := json.NewEncoder(stdio.Out)
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			report.Inspection(stdio.Out, rep)
			return nil
		},
	}
}
