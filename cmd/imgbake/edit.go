package main

import (
	"errors"
	"fmt"
	"path"

	"github.com/urfave/cli/v2"

	"github.com/imgbake/imgbake/bake"
	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/internal/clidocs"
)

func editCommand() *cli.Command {
	return &cli.Command{
		Name:        "edit",
		Usage:       "edit a file of a disk image with $EDITOR on the host, or with -e 's/REGEX/REPL/'",
		ArgsUsage:   "PATH",
		Description: clidocs.Text("edit"),
		Flags: append(diskFlags(),
			&cli.StringSliceFlag{Name: "expression", Aliases: []string{"e"}, Usage: "`s/REGEX/REPLACEMENT/[gi]` instead of an editor (repeatable)"},
			writeROFlag(),
		),
		Action: func(c *cli.Context) error {
			stdio := stdioOf(c)
			if c.NArg() != 1 {
				return usageErr("usage: imgbake edit [flags] PATH (exactly one file)")
			}
			if err := rejectRO(c); err != nil {
				return err
			}
			p, err := imagePathArg(c.Args().First())
			if err != nil {
				return err
			}
			var exprs []*fsops.SedExpr
			for _, e := range c.StringSlice("expression") {
				x, err := fsops.ParseSed(e)
				if err != nil {
					return withCode(ExitUsage, err)
				}
				exprs = append(exprs, x)
			}
			editor := ""
			if len(exprs) == 0 {
				editor = fsops.HostEditor()
			}
			ctx := c.Context
			op, err := openImage(ctx, c, stdio, bake.Options{})
			if err != nil {
				return err
			}
			replaced := 0
			res, err := fsops.EditInPlace(ctx, op.Session(), p, func(data []byte) ([]byte, error) {
				if len(exprs) > 0 {
					out, n := fsops.ApplySed(data, exprs)
					replaced = n
					return out, nil
				}
				return fsops.EditWithEditor(ctx, editor, path.Base(p), data, stdio.In, stdio.Out, stdio.Err)
			})
			if err != nil {
				op.Abort()
				if errors.Is(err, fsops.ErrEditorFailed) {
					return withCode(ExitStepFailed, err)
				}
				return opFailed(ctx, fmt.Errorf("edit %s: %w", p, err))
			}
			if err := op.Finish(ctx, res.Changed); err != nil {
				return err
			}
			switch {
			case !res.Changed && len(exprs) > 0:
				fmt.Fprintf(stdio.Err, "imgbake: %s: nothing to change, the image is unchanged\n", p)
			case !res.Changed:
				fmt.Fprintf(stdio.Err, "imgbake: %s was not changed; the image is unchanged\n", p)
			case len(exprs) > 0:
				fmt.Fprintf(stdio.Err, "imgbake: %s: %d replacement%s written back (mode and owner kept)\n", p, replaced, plural(replaced))
			default:
				fmt.Fprintf(stdio.Err, "imgbake: %s written back (mode and owner kept)\n", p)
			}
			return nil
		},
	}
}
