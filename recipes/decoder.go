package recipes

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/imgbake/imgbake/internal/filemode"
	"github.com/imgbake/imgbake/internal/suggest"
)

// Decoder walks a recipe's YAML node tree. It records every problem it finds
// and keeps going, so that one run reports all of them.
type Decoder struct {
	file    string
	baseDir string // absolute; relative host paths are resolved against it
	errs    ErrorList

	overrides map[string]any // vars from the command line
	varsSeen  map[string]any // the recipe's vars, once decoded
	loadData  map[string]any // template data at load: vars, empty facts

	hostPaths []string // every host path decoded, in order (Step.HostPaths)
}

func (d *Decoder) pos(n *yaml.Node) Position {
	// Clamp so that even position-less nodes yield a usable FILE:LINE:COL.
	return Position{File: d.file, Line: max(n.Line, 1), Col: max(n.Column, 1)}
}

// ErrorAt records a problem at an explicit position, e.g. inside a file
// that the recipe names.
func (d *Decoder) ErrorAt(pos Position, format string, args ...any) {
	d.errs = append(d.errs, &Error{Pos: pos, Msg: fmt.Sprintf(format, args...)})
}

// LoadData is the template data known while loading (the vars, empty
// facts), for checking templates early; nil when not checking.
func (d *Decoder) LoadData() map[string]any { return d.loadData }

func (d *Decoder) Errorf(n *yaml.Node, format string, args ...any) {
	d.errs = append(d.errs, &Error{Pos: d.pos(n), Msg: fmt.Sprintf(format, args...)})
}

// prefix renders the context of a message, e.g. "write.mode: ".
func Prefix(ctx string) string {
	if ctx == "" {
		return ""
	}
	return ctx + ": "
}

func (d *Decoder) TypeError(ctx, want string, n *yaml.Node) {
	d.Errorf(n, "%sexpected %s, got %s", Prefix(ctx), want, describeNode(n))
}

// resolve follows an alias to its anchored node.
func ResolveAlias(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}

func IsNull(n *yaml.Node) bool {
	n = ResolveAlias(n)
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describeNode names what the user wrote, for type errors.
func describeNode(n *yaml.Node) string {
	n = ResolveAlias(n)
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch tag := n.ShortTag(); tag {
		case "!!null":
			return "null"
		case "!!str":
			return "string " + Quote(n.Value)
		case "!!int":
			return "integer " + show(n.Value)
		case "!!float":
			return "number " + show(n.Value)
		case "!!bool":
			return "boolean " + show(n.Value)
		default:
			return show(tag) + " value"
		}
	}
	return "nothing"
}

// quote renders a user-supplied string on one line, shortened if long.
func Quote(s string) string {
	const limit = 40
	if utf8.RuneCountInString(s) > limit {
		s = string([]rune(s)[:limit-1]) + "…"
	}
	return strconv.Quote(s)
}

// show is quote without the quotes when they add nothing.
func show(s string) string {
	q := Quote(s)
	if q[1:len(q)-1] == s && s != "" && !strings.Contains(s, " ") {
		return s
	}
	return q
}

// mapping calls fn for each key/value pair of n, itself reporting keys that
// are not strings or occur twice. It reports whether n was a mapping.
func (d *Decoder) Mapping(ctx, want string, n *yaml.Node, fn func(key string, keyNode, value *yaml.Node)) bool {
	m := ResolveAlias(n)
	if m.Kind != yaml.MappingNode {
		d.TypeError(ctx, want, n)
		return false
	}
	seen := make(map[string]*yaml.Node)
	for i := 0; i+1 < len(m.Content); i += 2 {
		keyNode, value := m.Content[i], m.Content[i+1]
		k := ResolveAlias(keyNode)
		if k.Kind != yaml.ScalarNode {
			d.Errorf(keyNode, "%skeys must be strings, got %s", Prefix(ctx), describeNode(k))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.Errorf(keyNode, "%sduplicate key %s (first at %d:%d)", Prefix(ctx), Quote(k.Value), first.Line, first.Column)
			continue
		}
		seen[k.Value] = keyNode
		fn(k.Value, keyNode, value)
	}
	return true
}

// Field is one key of a mapping with a fixed set of keys, for Fields.
type Field struct {
	Key      string
	Required bool
	Decode   func(value *yaml.Node)
}

// fields decodes a mapping with a fixed set of keys, reporting unknown and
// missing ones. It reports whether n was a mapping.
func (d *Decoder) Fields(ctx string, n *yaml.Node, fields ...Field) bool {
	present := make(map[string]bool)
	ok := d.Mapping(ctx, "a mapping", n, func(key string, keyNode, value *yaml.Node) {
		i := slices.IndexFunc(fields, func(f Field) bool { return f.Key == key })
		if i < 0 {
			valid := make([]string, len(fields))
			for i, f := range fields {
				valid[i] = f.Key
			}
			d.unknownKey(ctx, keyNode, key, valid, "valid keys: "+strings.Join(valid, ", "))
			return
		}
		present[key] = true
		fields[i].Decode(value)
	})
	if !ok {
		return false
	}
	for _, f := range fields {
		if f.Required && !present[f.Key] {
			d.Errorf(n, "%smissing required key %q", Prefix(ctx), f.Key)
		}
	}
	return true
}

// unknownKey reports key, suggesting the closest valid key when it looks
// like a typo and otherwise listing what is allowed.
func (d *Decoder) unknownKey(ctx string, keyNode *yaml.Node, key string, valid []string, help string) {
	if s := suggest.Closest(key, valid); s != "" {
		d.Errorf(keyNode, "%sunknown key %s; did you mean %q?", Prefix(ctx), Quote(key), s)
		return
	}
	d.Errorf(keyNode, "%sunknown key %s; %s", Prefix(ctx), Quote(key), help)
}

// str decodes a scalar as a string. Plain numbers and booleans are taken
// verbatim, so `content: 42` means the text "42".
func (d *Decoder) Str(ctx string, n *yaml.Node) (string, bool) {
	s := ResolveAlias(n)
	if s.Kind == yaml.ScalarNode {
		switch s.ShortTag() {
		case "!!str", "!!int", "!!float", "!!bool", "!!timestamp":
			return s.Value, true
		}
	}
	d.TypeError(ctx, "a string", n)
	return "", false
}

func (d *Decoder) Bool(ctx string, n *yaml.Node) bool {
	var b bool
	if s := ResolveAlias(n); s.Kind != yaml.ScalarNode || s.ShortTag() != "!!bool" || s.Decode(&b) != nil {
		d.TypeError(ctx, "true or false", n)
	}
	return b
}

func (d *Decoder) timeout(ctx string, n *yaml.Node) time.Duration {
	s, ok := d.Str(ctx, n)
	if !ok {
		return 0
	}
	t, err := time.ParseDuration(s)
	switch {
	case err != nil:
		d.Errorf(n, `%sinvalid duration %s; want e.g. "30s" or "5m"`, Prefix(ctx), Quote(s))
	case t <= 0:
		d.Errorf(n, "%smust be positive, got %s", Prefix(ctx), Quote(s))
	}
	return t
}

// imagePath decodes a path inside the image: absolute, cleaned.
func (d *Decoder) ImagePath(ctx string, n *yaml.Node) string {
	p, ok := d.Str(ctx, n)
	switch {
	case !ok:
		return ""
	case p == "":
		d.Errorf(n, "%sempty path", Prefix(ctx))
	case strings.ContainsRune(p, 0):
		d.Errorf(n, "%s%s contains a NUL byte", Prefix(ctx), Quote(p))
	case !path.IsAbs(p):
		d.Errorf(n, "%s%s is not absolute; paths in the image start with /", Prefix(ctx), Quote(p))
	default:
		return path.Clean(p)
	}
	return ""
}

// hostPath decodes a path on the host, resolving it against the recipe's
// directory so that a recipe means the same thing from any working directory.
// It returns the path as written too, for messages.
func (d *Decoder) HostPath(ctx string, n *yaml.Node) (abs, written string) {
	p, ok := d.Str(ctx, n)
	switch {
	case !ok:
		return "", ""
	case p == "":
		d.Errorf(n, "%sempty path", Prefix(ctx))
		return "", ""
	case strings.ContainsRune(p, 0):
		d.Errorf(n, "%s%s contains a NUL byte", Prefix(ctx), Quote(p))
		return "", ""
	case filepath.IsAbs(p):
		abs = filepath.Clean(p)
	default:
		abs = filepath.Join(d.baseDir, p)
	}
	d.hostPaths = append(d.hostPaths, abs)
	return abs, p
}

// existingHostPath is hostPath for paths that must already exist.
func (d *Decoder) ExistingHostPath(ctx string, n *yaml.Node) string {
	abs, written := d.HostPath(ctx, n)
	if abs == "" {
		return ""
	}
	if _, err := os.Stat(abs); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			d.Errorf(n, "%s%s does not exist (looked for %q)", Prefix(ctx), Quote(written), abs)
		} else {
			if pathErr := (*fs.PathError)(nil); errors.As(err, &pathErr) {
				err = pathErr.Err // the path is already in the message
			}
			d.Errorf(n, "%s%s: %v", Prefix(ctx), Quote(written), err)
		}
	}
	return abs
}

// mode decodes a permission mode. It is always read as octal, whether
// written as a string ("0644", "644", "0o644") or a YAML integer, because
// that is how modes are written everywhere else (chmod, Ansible).
func (d *Decoder) Mode(ctx string, n *yaml.Node) *fs.FileMode {
	s := ResolveAlias(n)
	if s.Kind != yaml.ScalarNode || (s.ShortTag() != "!!str" && s.ShortTag() != "!!int") {
		d.TypeError(ctx, `an octal mode like "0644"`, n)
		return nil
	}
	m, err := parseMode(s.Value)
	if err != nil {
		d.Errorf(n, "%s%v", Prefix(ctx), err)
		return nil
	}
	return &m
}

func parseMode(s string) (fs.FileMode, error) {
	v, err := filemode.Parse(s)
	if errors.Is(err, filemode.ErrRange) {
		return 0, fmt.Errorf("%s is out of range (max 07777)", Quote(s))
	} else if err != nil {
		return 0, fmt.Errorf(`invalid mode %s; want octal digits like "0644"`, Quote(s))
	}
	// fs.FileMode keeps the setuid, setgid and sticky bits outside the low
	// 12 bits, so translate them rather than casting.
	return filemode.FromUnix(v), nil
}

// ownerName matches a user or group name or numeric id. A leading '-' is
// refused so that the value can never be mistaken for a chown option.
var ownerName = regexp.MustCompile(`^[A-Za-z0-9_.][A-Za-z0-9_.-]*\$?$`)

func (d *Decoder) Owner(ctx string, n *yaml.Node) string {
	s, ok := d.Str(ctx, n)
	if !ok {
		return ""
	}
	user, group, hasGroup := strings.Cut(s, ":")
	if !ownerName.MatchString(user) || hasGroup && !ownerName.MatchString(group) {
		d.Errorf(n, "%sinvalid owner %s; want user or user:group (names or numeric ids)", Prefix(ctx), Quote(s))
	}
	return s
}
