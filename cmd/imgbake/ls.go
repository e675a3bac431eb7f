package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/imgbake/imgbake/bake"
	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/internal/clidocs"
	"github.com/imgbake/imgbake/internal/filemode"
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
			l := &lister{ctx: c.Context, s: op.Session(), w: stdio.Out, errw: stdio.Err, long: c.Bool("long"), recursive: c.Bool("recursive")}
			if l.long {
				l.users, l.groups = fsops.OwnerNames(c.Context, op.Session())
			}
			var failed error
			for _, p := range paths {
				if err := l.list(p, len(paths) > 1 || l.recursive); err != nil {
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
			if failed != nil || l.failed {
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

type lister struct {
	ctx             context.Context
	s               fsops.Session
	w               io.Writer
	errw            io.Writer
	long, recursive bool
	users, groups   map[int]string
	failed          bool // a subdirectory could not be listed
	printed         bool // something was listed: the next directory starts after a blank line
}

// list prints p: a directory's entries (with -R its subdirectories'), or
// p itself when it is not a directory.
func (l *lister) list(p string, header bool) error {
	return fsops.List(l.ctx, l.s, p, l.recursive, func(d fsops.Listing) error {
		if d.Err != nil {
			fmt.Fprintf(l.errw, "imgbake: ls: %v\n", d.Err)
			l.failed = true
			return nil
		}
		if d.Dir != "" {
			if l.printed {
				fmt.Fprintln(l.w)
			}
			if header || d.Dir != p {
				fmt.Fprintf(l.w, "%s:\n", safeName(d.Dir))
			}
		}
		l.printed = true
		for _, e := range d.Entries {
			l.entry(e)
		}
		return nil
	})
}

func (l *lister) entry(e fsops.DirEntry) {
	name := safeName(e.Name)
	if !l.long {
		fmt.Fprintln(l.w, name)
		return
	}
	m := fs.FileMode(e.Mode)
	if m&fs.ModeSymlink != 0 {
		name += " -> " + safeName(e.Target)
	}
	fmt.Fprintf(l.w, "%s %-8s %-8s %10d %s %s\n", filemode.LsString(m), l.idName(l.users, e.UID), l.idName(l.groups, e.GID), e.Size,
		time.Unix(0, e.MTimeNS).Format("2006-01-02 15:04"), name)
}

func (l *lister) idName(names map[int]string, id int) string {
	if n, ok := names[id]; ok {
		return safeName(n)
	}
	return strconv.Itoa(id)
}
