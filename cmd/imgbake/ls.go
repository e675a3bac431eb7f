package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strconv"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/imgbake/imgbake/bake"
	"github.com/imgbake/imgbake/fsops"
)

func lsCommand() *cli.Command {
	return &cli.Command{
		Name:      "ls",
		Usage:     "list a directory of a disk image (read-only)",
		ArgsUsage: "PATH...",
		Description: "Lists every entry (dot files too), sorted by name. PATH is absolute inside the image; its symlinks\n" +
			"resolve inside the image. -l shows mode, owner (named from the image's own /etc/passwd and /etc/group),\n" +
			"size, modification time and symlink targets; -R descends into subdirectories (not into symlinks, nor\n" +
			"into /proc, /sys and /dev, where the appliance's own are mounted). Names with control characters are\n" +
			"shown quoted.\n\n" + oneShotExitHelp,
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
			for i, p := range paths {
				if err := l.list(p, len(paths) > 1 || l.recursive, i > 0); err != nil {
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
// with the next) from an appliance failure: anything the agent answered
// with an error (ENOENT, EISDIR, EIO from a damaged filesystem, ...) is about
// the path.
func isPathError(err error) bool {
	return fsops.IsPathError(err) || errors.Is(err, errTooDeep)
}

var errTooDeep = errors.New("directories nest too deeply")

type lister struct {
	ctx             context.Context
	s               fsops.Session
	w               io.Writer
	errw            io.Writer
	long, recursive bool
	users, groups   map[int]string
	failed          bool // a subdirectory could not be listed
}

// maxLsDepth bounds -R in a hostile image.
const maxLsDepth = 256

// list prints p: a directory's entries, or p itself when it is not a
// directory.
func (l *lister) list(p string, header, blank bool) error {
	ents, err := l.s.ReadDir(l.ctx, p)
	if errors.Is(err, syscall.ENOTDIR) {
		st, serr := l.s.Stat(l.ctx, p)
		if serr != nil {
			return serr
		}
		if !st.Exists {
			return fmt.Errorf("%s: %w", p, fs.ErrNotExist)
		}
		l.entry(fsops.DirEntry{Name: p, StatResult: st})
		return nil
	}
	if err != nil {
		return err // the agent's message names the path
	}
	return l.dir(p, ents, header, blank, 0)
}

func (l *lister) dir(p string, ents []fsops.DirEntry, header, blank bool, depth int) error {
	if blank {
		fmt.Fprintln(l.w)
	}
	if header {
		fmt.Fprintf(l.w, "%s:\n", safeName(p))
	}
	for _, e := range ents {
		l.entry(e)
	}
	if !l.recursive {
		return nil
	}
	if depth >= maxLsDepth {
		return fmt.Errorf("%s: %w", p, errTooDeep)
	}
	for _, e := range ents {
		sub := path.Join(p, e.Name)
		if !fs.FileMode(e.Mode).IsDir() || sub == "/proc" || sub == "/sys" || sub == "/dev" {
			continue
		}
		children, err := l.s.ReadDir(l.ctx, sub)
		if err != nil {
			if !isPathError(err) {
				return err
			}
			fmt.Fprintf(l.errw, "imgbake: ls: %v\n", err)
			l.failed = true
			continue
		}
		if err := l.dir(sub, children, true, true, depth+1); err != nil {
			return err
		}
	}
	return nil
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
	fmt.Fprintf(l.w, "%s %-8s %-8s %10d %s %s\n", lsMode(m), l.idName(l.users, e.UID), l.idName(l.groups, e.GID), e.Size,
		time.Unix(0, e.MTimeNS).Format("2006-01-02 15:04"), name)
}

func (l *lister) idName(names map[int]string, id int) string {
	if n, ok := names[id]; ok {
		return safeName(n)
	}
	return strconv.Itoa(id)
}

// lsMode renders a mode the way ls -l does (drwxr-sr-x, -rwsr-xr-x,
// drwxrwxrwt).
func lsMode(m fs.FileMode) string {
	b := []byte("----------")
	switch {
	case m.IsDir():
		b[0] = 'd'
	case m&fs.ModeSymlink != 0:
		b[0] = 'l'
	case m&fs.ModeCharDevice != 0:
		b[0] = 'c'
	case m&fs.ModeDevice != 0:
		b[0] = 'b'
	case m&fs.ModeNamedPipe != 0:
		b[0] = 'p'
	case m&fs.ModeSocket != 0:
		b[0] = 's'
	}
	const rwx = "rwxrwxrwx"
	for i := 0; i < 9; i++ {
		if m&(1<<uint(8-i)) != 0 {
			b[i+1] = rwx[i]
		}
	}
	special := func(i int, set bool, on, off byte) {
		if !set {
			return
		}
		if b[i] == 'x' {
			b[i] = on
		} else {
			b[i] = off
		}
	}
	special(3, m&fs.ModeSetuid != 0, 's', 'S')
	special(6, m&fs.ModeSetgid != 0, 's', 'S')
	special(9, m&fs.ModeSticky != 0, 't', 'T')
	return string(b)
}
