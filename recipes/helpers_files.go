package recipes

import (
	"errors"
	"io/fs"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Decoder helpers for the file step kinds (append_line, edit, upload,
// chmod, chown, move, link, touch, truncate, script).

// filesTarget is imagePath for a path that must name something below /,
// e.g. the file an append_line edits.
func (d *Decoder) FilesTarget(ctx string, n *yaml.Node) string {
	p := d.ImagePath(ctx, n)
	if p == "/" {
		d.Errorf(n, "%s/ is a directory", Prefix(ctx))
	}
	return p
}

// filesHostFile is existingHostPath for a path that must be a regular file
// (or a symlink to one). dirHint follows the message for a directory.
func (d *Decoder) FilesHostFile(ctx string, n *yaml.Node, dirHint string) string {
	abs := d.ExistingHostPath(ctx, n)
	if abs == "" {
		return ""
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return abs // existingHostPath reported it
	}
	written := ResolveAlias(n).Value
	switch {
	case fi.IsDir():
		d.Errorf(n, "%s%s is a directory%s", Prefix(ctx), Quote(written), dirHint)
	case !fi.Mode().IsRegular():
		d.Errorf(n, "%s%s is not a regular file", Prefix(ctx), Quote(written))
	default:
		if f, err := os.Open(abs); err != nil {
			if pathErr := (*fs.PathError)(nil); errors.As(err, &pathErr) {
				err = pathErr.Err
			}
			d.Errorf(n, "%s%s: %v", Prefix(ctx), Quote(written), err)
		} else {
			f.Close()
		}
	}
	return abs
}

// filesLine is str for text that must be one non-empty line.
func (d *Decoder) FilesLine(ctx string, n *yaml.Node) string {
	s, ok := d.Str(ctx, n)
	switch {
	case !ok:
	case s == "":
		d.Errorf(n, "%sempty line", Prefix(ctx))
	case strings.ContainsAny(s, "\n\r"):
		d.Errorf(n, "%smust be a single line (no newline)", Prefix(ctx))
	case strings.ContainsRune(s, 0):
		d.Errorf(n, "%scontains a NUL byte", Prefix(ctx))
	}
	return s
}

// filesArgs decodes a list of scalars (strings, numbers, booleans taken
// verbatim) such as a script's arguments.
func (d *Decoder) FilesArgs(ctx string, n *yaml.Node) []string {
	l := ResolveAlias(n)
	if l.Kind != yaml.SequenceNode {
		d.TypeError(ctx, "a list of strings", n)
		return nil
	}
	out := make([]string, 0, len(l.Content))
	for _, item := range l.Content {
		s, ok := d.Str(ctx, item)
		if ok && strings.ContainsRune(s, 0) {
			d.Errorf(item, "%s%s contains a NUL byte", Prefix(ctx), Quote(s))
		}
		out = append(out, s)
	}
	return out
}
