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

func fsckCommand() *cli.Command {
	return &cli.Command{
		Name:        "fsck",
		Usage:       "check (and with --repair, repair) the filesystems of a disk image, unmounted",
		ArgsUsage:   "[DEVICE...]",
		Description: clidocs.Text("fsck"),
		Flags: append(diskFlags(),
			&cli.BoolFlag{Name: "repair", Usage: "repair what the checkers find"},
			&cli.BoolFlag{Name: "ro", Usage: "check only, disks attached read-only (the default without --repair)"},
		),
		Action: func(c *cli.Context) error {
			stdio := stdioOf(c)
			repair := c.Bool("repair")
			if repair && c.Bool("ro") {
				return usageErr("fsck: --repair writes to the image and cannot run with --ro")
			}
			if len(c.StringSlice("mount")) > 0 {
				return usageErr("fsck: -m does not apply: fsck mounts nothing")
			}
			var want []string
			for _, a := range c.Args().Slice() {
				d, err := fsops.DeviceArg(a)
				if err != nil {
					return usageErr("fsck: %v", err)
				}
				want = append(want, d)
			}
			ctx := c.Context
			op, err := openImage(ctx, c, stdio, bake.Options{ReadOnly: !repair, Rescue: true, NoMount: true})
			if err != nil {
				return err
			}
			targets, err := fsops.FsckTargets(op.Mounts().Filesystems, want)
			if err != nil {
				op.Abort()
				if errors.Is(err, fsops.ErrNoDevice) {
					return usageErr("fsck: %v", err)
				}
				return withCode(ExitStepFailed, fmt.Errorf("fsck: %w", err))
			}
			var results []fsops.FsckResult
			for _, f := range targets {
				mode := "checking"
				if repair {
					mode = "checking and repairing"
				}
				if fsops.Checkable(f.Type) {
					fmt.Fprintf(stdio.Out, "== %s (%s%s): %s\n", f.Device, f.Type, fsops.FilesystemIdent(f), mode)
				}
				out := &report.IndentWriter{W: stdio.Out, Prefix: "   "}
				r, err := fsops.Fsck(ctx, op.Session(), f, fsops.FsckOptions{Repair: repair, Output: out})
				out.Flush()
				if err != nil {
					op.Abort()
					return err
				}
				results = append(results, r)
				line := fmt.Sprintf("-> %s: %s", f.Device, r.Status)
				if len(r.Runs) > 0 {
					line += fmt.Sprintf(" (%s rc %d)", r.Tool, r.RC)
				}
				if r.Note != "" {
					line += ": " + r.Note
				}
				fmt.Fprintln(stdio.Out, line)
			}
			summary, commit, bad := fsops.SummarizeFsck(results, repair)
			if err := op.Finish(ctx, commit); err != nil {
				return err
			}
			fmt.Fprintln(stdio.Out, summary)
			if bad {
				return withCode(ExitStepFailed, errReported)
			}
			return nil
		},
	}
}
