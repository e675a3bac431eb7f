package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"

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
				editor = hostEditor()
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
				return editWithEditor(ctx, stdio, editor, path.Base(p), data)
			})
			if err != nil {
				op.Abort()
				if errors.Is(err, errEditorFailed) {
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

// hostEditor is $VISUAL, $EDITOR or vi.
func hostEditor() string {
	for _, v := range []string{"VISUAL", "EDITOR"} {
		if e := os.Getenv(v); e != "" {
			return e
		}
	}
	return "vi"
}

var errEditorFailed = errors.New("the editor failed; the image is unchanged")

// editWithEditor writes data to a private temporary file, runs the editor
// on it (through sh, so EDITOR may carry arguments, e.g. "code --wait")
// and returns what the file holds afterwards.
func editWithEditor(ctx context.Context, stdio Stdio, editor, base string, data []byte) ([]byte, error) {
	dir, err := os.MkdirTemp("", "imgbake-edit-")
	if err != nil {
		return nil, fmt.Errorf("temporary copy: %w", err)
	}
	defer os.RemoveAll(dir)
	if base == "/" || base == "." || base == "" {
		base = "file"
	}
	tmp := filepath.Join(dir, base)
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return nil, fmt.Errorf("temporary copy: %w", err)
	}
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", editor+` "$1"`, "imgbake-edit", tmp)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdio.In, stdio.Out, stdio.Err
	if f, ok := stdio.In.(*os.File); ok {
		cmd.Stdin = f
	}
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", errEditorFailed, editor, err)
	}
	out, err := os.ReadFile(tmp)
	if err != nil {
		return nil, fmt.Errorf("reading the edited copy: %w", err)
	}
	return out, nil
}
