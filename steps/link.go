package steps

import (
	"context"
	"strings"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/recipes"
	"go.yaml.in/yaml/v3"
)

// Link makes Path a symlink to Target.
type Link struct {
	Target string // stored verbatim: absolute (resolved in the image) or relative to Path's directory
	Path   string
}

func init() {
	register(Kind{Name: "link", Idempotent: true, Decode: decodeLink,
		Example: `link: {target: /usr/share/zoneinfo/UTC, path: /etc/localtime}   # symlink; ok when it already points there`,
		Apply: func(ctx context.Context, env Env, st recipes.Step) (fsops.Result, error) {
			op := st.Op.(*Link)
			return fsops.Link(ctx, env.Session, op.Target, op.Path)
		},
	})
}

func (*Link) Kind() string       { return "link" }
func (l *Link) Describe() string { return "link: " + l.Path + " -> " + l.Target }

func decodeLink(d *recipes.Decoder, n *yaml.Node) recipes.Op {
	var l Link
	d.Fields("link", n,
		recipes.Field{Key: "target", Required: true, Decode: func(v *yaml.Node) {
			s, ok := d.Str("link.target", v)
			switch {
			case !ok:
			case s == "":
				d.Errorf(v, "link.target: empty target")
			case strings.ContainsRune(s, 0):
				d.Errorf(v, "link.target: %s contains a NUL byte", recipes.Quote(s))
			case len(s) >= 4096:
				d.Errorf(v, "link.target: longer than 4095 bytes")
			}
			l.Target = s
		}},
		recipes.Field{Key: "path", Required: true, Decode: func(v *yaml.Node) { l.Path = d.FilesTarget("link.path", v) }},
	)
	return &l
}
