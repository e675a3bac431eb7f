package main

import (
	"encoding/json"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/imgbake/imgbake/bake"
	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/internal/clidocs"
	"github.com/imgbake/imgbake/internal/report"
)

func fstabCommand() *cli.Command {
	cmd := &cli.Command{
		Name:        "fstab",
		Usage:       "check the image's /etc/fstab against the devices present, or fix it",
		Description: clidocs.Text("fstab"),
		Subcommands: []*cli.Command{
			{
				Name:        "check",
				Usage:       "list the entries whose device is missing (read-only; exit 1 if there are any)",
				Flags:       append(diskFlags(), roFlag(), &cli.BoolFlag{Name: "json", Usage: "print the entries as JSON"}),
				Description: clidocs.Text("fstab check"),
				Action: func(c *cli.Context) error {
					stdio := stdioOf(c)
					if c.NArg() != 0 {
						return usageErr("fstab check takes no arguments (got %q)", c.Args().Slice())
					}
					ctx := c.Context
					op, err := openImage(ctx, c, stdio, bake.Options{ReadOnly: true})
					if err != nil {
						return err
					}
					rep, err := op.Session().FstabCheck(ctx)
					if err != nil {
						op.Abort()
						return opFailed(ctx, fmt.Errorf("reading /etc/fstab: %w", err))
					}
					if err := op.Finish(ctx, false); err != nil {
						return err
					}
					if c.Bool("json") {
						enc := json.NewEncoder(stdio.Out)
						enc.SetIndent("", "  ")
						if err := enc.Encode(rep); err != nil {
							return err
						}
					} else {
						report.Fstab(stdio.Out, rep)
					}
					if n := len(fsops.FstabProblems(rep)); n > 0 {
						fmt.Fprintf(stdio.Err, "imgbake: %d fstab entr%s with a missing device; `imgbake fstab fix` comments them out (or --nofail)\n", n, map[bool]string{true: "y", false: "ies"}[n == 1])
						return withCode(ExitStepFailed, errReported)
					}
					return nil
				},
			},
			{
				Name:        "fix",
				Usage:       "comment out the entries whose device is missing (or add nofail), keeping /etc/fstab.imgbake-bak",
				Description: clidocs.Text("fstab fix"),
				Flags: append(diskFlags(), writeROFlag(),
					&cli.BoolFlag{Name: "nofail", Usage: "add nofail instead of commenting entries out"}),
				Action: func(c *cli.Context) error {
					stdio := stdioOf(c)
					if c.NArg() != 0 {
						return usageErr("fstab fix takes no arguments (got %q)", c.Args().Slice())
					}
					if err := rejectRO(c); err != nil {
						return err
					}
					ctx := c.Context
					op, err := openImage(ctx, c, stdio, bake.Options{})
					if err != nil {
						return err
					}
					rep, err := op.Session().FstabCheck(ctx)
					if err != nil {
						op.Abort()
						return opFailed(ctx, fmt.Errorf("reading /etc/fstab: %w", err))
					}
					var root fsops.Filesystem
					for _, fs := range op.Mounts().Filesystems {
						if fs.Device == op.Mounts().Root {
							root = fs
						}
					}
					res, fixes, err := fsops.FixFstab(ctx, op.Session(), rep, root, c.Bool("nofail"))
					if err != nil {
						op.Abort()
						return opFailed(ctx, fmt.Errorf("fixing /etc/fstab: %w", err))
					}
					if err := op.Finish(ctx, res.Changed); err != nil {
						return err
					}
					report.FstabFixes(stdio.Out, fixes)
					if res.Changed {
						fmt.Fprintf(stdio.Err, "imgbake: /etc/fstab fixed: %s\n", res.Detail)
					} else {
						fmt.Fprintln(stdio.Err, "imgbake: /etc/fstab has nothing to fix; the image is unchanged")
					}
					return nil
				},
			},
		},
	}
	return cmd
}
