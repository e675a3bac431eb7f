package steps

import (
	"context"
	"regexp"
	"strings"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/recipes"
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

func init() {
	register(Kind{Name: "edit", Idempotent: true, Decode: decodeEdit,
		Example: `edit: {path: /etc/ssh/sshd_config, regexp: '^#?PermitRootLogin .*', replace: "PermitRootLogin no"}  # Go regexp per line; multiline: true for the whole file`,
		Apply: func(ctx context.Context, env Env, st recipes.Step) (fsops.Result, error) {
			op := st.Op.(*Edit)
			return fsops.Edit(ctx, env.Session, op.Path, op.Regexp, op.Replace, op.Multiline)
		},
	})
}

func (*Edit) Kind() string       { return "edit" }
func (e *Edit) Describe() string { return "edit: " + e.Path }

func decodeEdit(d *recipes.Decoder, n *yaml.Node) recipes.Op {
	var e Edit
	d.Fields("edit", n,
		recipes.Field{Key: "path", Required: true, Decode: func(v *yaml.Node) { e.Path = d.FilesTarget("edit.path", v) }},
		recipes.Field{Key: "regexp", Required: true, Decode: func(v *yaml.Node) {
			s, ok := d.Str("edit.regexp", v)
			if !ok {
				return
			}
			e.Regexp = s
			if s == "" {
				d.Errorf(v, "edit.regexp: empty regexp")
				return
			}
			if _, err := regexp.Compile(s); err != nil {
				msg := strings.TrimPrefix(err.Error(), "error parsing regexp: ")
				d.Errorf(v, "edit.regexp: invalid regexp: %s", msg)
			}
		}},
		recipes.Field{Key: "replace", Required: true, Decode: func(v *yaml.Node) { e.Replace, _ = d.Str("edit.replace", v) }},
		recipes.Field{Key: "multiline", Decode: func(v *yaml.Node) { e.Multiline = d.Bool("edit.multiline", v) }},
	)
	return &e
}
