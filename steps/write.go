package steps

import (
	"context"
	"io/fs"
	"strings"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/recipes"
	"go.yaml.in/yaml/v3"
)

// Write creates or replaces a file in the image.
type Write struct {
	Path    string
	Content string
	Mode    *fs.FileMode // nil: keep an existing file's mode, else 0644
	Owner   string       // "user" or "user:group", names or ids; "" leaves it alone
}

func init() {
	register(Kind{Name: "write", Idempotent: true, Decode: decodeWrite,
		Example: `write: {path: /etc/motd, content: "Welcome\n", mode: "0644", owner: root:root}`,
		Apply: func(ctx context.Context, env Env, st recipes.Step) (fsops.Result, error) {
			op := st.Op.(*Write)
			return fsops.WriteFile(ctx, env.Session, op.Path, strings.NewReader(op.Content), fsops.WriteOptions{Mode: op.Mode, Owner: op.Owner})
		},
	})
}

func (*Write) Kind() string       { return "write" }
func (w *Write) Describe() string { return "write: " + w.Path }

func decodeWrite(d *recipes.Decoder, n *yaml.Node) recipes.Op {
	var w Write
	d.Fields("write", n,
		recipes.Field{Key: "path", Required: true, Decode: func(v *yaml.Node) {
			w.Path = d.ImagePath("write.path", v)
			if w.Path == "/" {
				d.Errorf(v, "write.path: / is a directory")
			}
		}},
		recipes.Field{Key: "content", Required: true, Decode: func(v *yaml.Node) { w.Content, _ = d.Str("write.content", v) }},
		recipes.Field{Key: "mode", Decode: func(v *yaml.Node) { w.Mode = d.Mode("write.mode", v) }},
		recipes.Field{Key: "owner", Decode: func(v *yaml.Node) { w.Owner = d.Owner("write.owner", v) }},
	)
	return &w
}
