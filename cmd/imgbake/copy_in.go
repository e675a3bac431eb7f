package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/imgbake/imgbake/bake"
	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/internal/clidocs"
)

func copyInCommand() *cli.Command {
	return &cli.Command{
		Name:        "copy-in",
		Usage:       "copy host files or directories (recursively) into a directory of a disk image",
		ArgsUsage:   "HOSTPATH... IMAGEDIR",
		Description: clidocs.Text("copy-in"),
		Flags:       append(diskFlags(), writeROFlag()),
		Action: func(c *cli.Context) error {
			stdio := stdioOf(c)
			if err := needArgs(c, 2, "HOSTPATH... IMAGEDIR"); err != nil {
				return err
			}
			if err := rejectRO(c); err != nil {
				return err
			}
			args := c.Args().Slice()
			dest, err := imagePathArg(args[len(args)-1])
			if err != nil {
				return err
			}
			srcs := args[:len(args)-1]
			for _, src := range srcs {
				if _, err := os.Lstat(src); err != nil {
					return usageErr("copy-in: %v", err)
				}
			}
			ctx := c.Context
			op, err := openImage(ctx, c, stdio, bake.Options{})
			if err != nil {
				return err
			}
			err = fsops.RequireDir(ctx, op.Session(), dest)
			if err != nil {
				op.Abort()
				return opFailed(ctx, err)
			}
			for _, src := range srcs {
				res, err := fsops.CopyIn(ctx, op.Session(), src, dest)
				if err != nil {
					op.Abort()
					return opFailed(ctx, fmt.Errorf("copy-in %s: %w", src, err))
				}
				op.Logf("copied %s into %s (%s)", src, dest, res.Detail)
			}
			return op.Finish(ctx, true)
		},
	}
}
