package recipes

import (
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Edit replaces the matches of a Go regexp in an existing file of the image:
// on each line by default (the line without its newline), or on the whole
// file with Multiline. Replace may use $1 or ${name} for groups.
type Edit struct {
	Path      string
	Regexp    string // valid Go (RE2) syntax, checked at load
	Replace   string
	Multiline bool
}

func init() { register("edit", decodeEdit) }

func (*Edit) Kind() string       { return "edit" }
func (e *Edit) Describe() string { return "edit: " + e.Path }

func decodeEdit(d *decoder, n *yaml.Node) Op {
	var e Edit
	d.fields("edit", n,
		field{key: "path", required: true, decode: func(v *yaml.Node) { e.Path = d.filesTarget("edit.path", v) }},
		field{key: "regexp", required: true, decode: func(v *yaml.Node) {
			s, ok := d.str("edit.regexp", v)
			if !ok {
				return
			}
			e.Regexp = s
			if s == "" {
				d.errorf(v, "edit.regexp: empty regexp")
				return
			}
			if _, err := regexp.Compile(s); err != nil {
				msg := strings.TrimPrefix(err.Error(), "error parsing regexp: ")
				d.errorf(v, "edit.regexp: invalid regexp: %s", msg)
			}
		}},
		field{key: "replace", required: true, decode: func(v *yaml.Node) { e.Replace, _ = d.str("edit.replace", v) }},
		field{key: "multiline", decode: func(v *yaml.Node) { e.Multiline = d.boolean("edit.multiline", v) }},
	)
	return &e
}
