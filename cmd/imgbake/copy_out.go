package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/imgbake/imgbake/bake"
	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/internal/clidocs"
)

func copyOutCommand() *cli.Command {
	return &cli.Command{
		Name:        "copy-out",
		Usage:       "copy files or directories (recursively) out of a disk image into a host directory (read-only)",
		ArgsUsage:   "IMAGEPATH... HOSTDIR",
		Description: clidocs.Text("copy-out"),
		Flags:       append(diskFlags(), roFlag()),
		Action: func(c *cli.Context) error {
			stdio := stdioOf(c)
			if err := needArgs(c, 2, "IMAGEPATH... HOSTDIR"); err != nil {
				return err
			}
			args := c.Args().Slice()
			hostDir := args[len(args)-1]
			if fi, err := os.Stat(hostDir); err != nil || !fi.IsDir() {
				return usageErr("copy-out: %s is not a directory on the host", hostDir)
			}
			var srcs []string
			for _, a := range args[:len(args)-1] {
				p, err := imagePathArg(a)
				if err != nil {
					return err
				}
				srcs = append(srcs, p)
			}
			ctx := c.Context
			op, err := openImage(ctx, c, stdio, bake.Options{ReadOnly: true})
			if err != nil {
				return err
			}
			for _, src := range srcs {
				res, err := fsops.CopyOut(ctx, op.Session(), src, hostDir)
				if err != nil {
					op.Abort()
					return opFailed(ctx, fmt.Errorf("copy-out %s: %w", src, err))
				}
				op.Logf("copied %s to %s (%s)", src, hostDir, res.Detail)
			}
			return op.Finish(ctx, false)
		},
	}
}
