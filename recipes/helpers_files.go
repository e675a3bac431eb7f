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
func (d *decoder) filesTarget(ctx string, n *yaml.Node) string {
	p := d.imagePath(ctx, n)
	if p == "/" {
		d.errorf(n, "%s/ is a directory", prefix(ctx))
	}
	return p
}

// filesHostFile is existingHostPath for a path that must be a regular file
// (or a symlink to one). dirHint follows the message for a directory.
func (d *decoder) filesHostFile(ctx string, n *yaml.Node, dirHint string) string {
	abs := d.existingHostPath(ctx, n)
	if abs == "" {
		return ""
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return abs // existingHostPath reported it
	}
	written := resolve(n).Value
	switch {
	case fi.IsDir():
		d.errorf(n, "%s%s is a directory%s", prefix(ctx), quote(written), dirHint)
	case !fi.Mode().IsRegular():
		d.errorf(n, "%s%s is not a regular file", prefix(ctx), quote(written))
	default:
		if f, err := os.Open(abs); err != nil {
			if pathErr := (*fs.PathError)(nil); errors.As(err, &pathErr) {
				err = pathErr.Err
			}
			d.errorf(n, "%s%s: %v", prefix(ctx), quote(written), err)
		} else {
			f.Close()
		}
	}
	return abs
}

// filesLine is str for text that must be one non-empty line.
func (d *decoder) filesLine(ctx string, n *yaml.Node) string {
	s, ok := d.str(ctx, n)
	switch {
	case !ok:
	case s == "":
		d.errorf(n, "%sempty line", prefix(ctx))
	case strings.ContainsAny(s, "\n\r"):
		d.errorf(n, "%smust be a single line (no newline)", prefix(ctx))
	case strings.ContainsRune(s, 0):
		d.errorf(n, "%scontains a NUL byte", prefix(ctx))
	}
	return s
}

// filesArgs decodes a list of scalars (strings, numbers, booleans taken
// verbatim) such as a script's arguments.
func (d *decoder) filesArgs(ctx string, n *yaml.Node) []string {
	l := resolve(n)
	if l.Kind != yaml.SequenceNode {
		d.typeError(ctx, "a list of strings", n)
		return nil
	}
	out := make([]string, 0, len(l.Content))
	for _, item := range l.Content {
		s, ok := d.str(ctx, item)
		if ok && strings.ContainsRune(s, 0) {
			d.errorf(item, "%s%s contains a NUL byte", prefix(ctx), quote(s))
		}
		out = append(out, s)
	}
	return out
}
