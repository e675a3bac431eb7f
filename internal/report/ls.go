package report

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"time"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/internal/filemode"
)

// Lister writes directory listings of an image as `imgbake ls` does:
// names only, or with -l mode, owner (named from the image's own
// /etc/passwd and /etc/group), size, time and symlink target.
type Lister struct {
	ctx             context.Context
	s               fsops.Session
	w               io.Writer
	errw            io.Writer
	long, recursive bool
	users, groups   map[int]string
	failed          bool // a subdirectory could not be listed
	printed         bool // something was listed: the next directory starts after a blank line
}

// NewLister lists on s into w, the problems of single entries into errw.
func NewLister(ctx context.Context, s fsops.Session, w, errw io.Writer, long, recursive bool) *Lister {
	l := &Lister{ctx: ctx, s: s, w: w, errw: errw, long: long, recursive: recursive}
	if long {
		l.users, l.groups = fsops.OwnerNames(ctx, s)
	}
	return l
}

// Failed reports whether a subdirectory could not be listed.
func (l *Lister) Failed() bool { return l.failed }

// List prints p: a directory's entries (with recursive its
// subdirectories'), or p itself when it is not a directory; header names
// the directory first.
func (l *Lister) List(p string, header bool) error {
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
				fmt.Fprintf(l.w, "%s:\n", SafeName(d.Dir))
			}
		}
		l.printed = true
		for _, e := range d.Entries {
			l.entry(e)
		}
		return nil
	})
}

func (l *Lister) entry(e fsops.DirEntry) {
	name := SafeName(e.Name)
	if !l.long {
		fmt.Fprintln(l.w, name)
		return
	}
	m := fs.FileMode(e.Mode)
	if m&fs.ModeSymlink != 0 {
		name += " -> " + SafeName(e.Target)
	}
	fmt.Fprintf(l.w, "%s %-8s %-8s %10d %s %s\n", filemode.LsString(m), l.idName(l.users, e.UID), l.idName(l.groups, e.GID), e.Size,
		time.Unix(0, e.MTimeNS).Format("2006-01-02 15:04"), name)
}

func (l *Lister) idName(names map[int]string, id int) string {
	if n, ok := names[id]; ok {
		return SafeName(n)
	}
	return strconv.Itoa(id)
}
