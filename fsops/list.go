package fsops

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"syscall"
)

// ErrTooDeep ends a recursive listing of a hostile image whose directories
// nest deeper than maxListDepth.
var ErrTooDeep = errors.New("directories nest too deeply")

const maxListDepth = 256

// Listing is one directory of a List, or (Dir "") the one entry that the
// path named when it is not a directory. Err is why a subdirectory could
// not be read; the walk goes on after it.
type Listing struct {
	Dir     string
	Entries []DirEntry
	Err     error
}

// List lists p inside the image: its entries, and with recursive every
// subdirectory's, depth first in name order — never following symlinks
// nor descending into /proc, /sys and /dev (the appliance's own are bound
// there). An error about p itself, a failure of the appliance or visit's
// error ends it.
func List(ctx context.Context, s Session, p string, recursive bool, visit func(Listing) error) error {
	ents, err := s.ReadDir(ctx, p)
	if errors.Is(err, syscall.ENOTDIR) {
		st, serr := s.Stat(ctx, p)
		if serr != nil {
			return serr
		}
		if !st.Exists {
			return fmt.Errorf("%s: %w", p, fs.ErrNotExist)
		}
		return visit(Listing{Entries: []DirEntry{{Name: p, StatResult: st}}})
	}
	if err != nil {
		return err // the agent's message names the path
	}
	return listDirs(ctx, s, p, ents, recursive, 0, visit)
}

func listDirs(ctx context.Context, s Session, p string, ents []DirEntry, recursive bool, depth int, visit func(Listing) error) error {
	if err := visit(Listing{Dir: p, Entries: ents}); err != nil || !recursive {
		return err
	}
	if depth >= maxListDepth {
		return fmt.Errorf("%s: %w", p, ErrTooDeep)
	}
	for _, e := range ents {
		sub := path.Join(p, e.Name)
		if !fs.FileMode(e.Mode).IsDir() || sub == "/proc" || sub == "/sys" || sub == "/dev" {
			continue
		}
		children, err := s.ReadDir(ctx, sub)
		if err != nil {
			if !IsPathError(err) {
				return err
			}
			if err := visit(Listing{Dir: sub, Err: err}); err != nil {
				return err
			}
			continue
		}
		if err := listDirs(ctx, s, sub, children, true, depth+1, visit); err != nil {
			return err
		}
	}
	return nil
}
