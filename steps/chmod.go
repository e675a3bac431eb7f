package steps

import (
	"context"
	"io/fs"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/recipes"
	"go.yaml.in/yaml/v3"
)

// Chmod sets the permission bits of an existing path (a final symlink is
// followed inside the image).
type Chmod struct {
	Path string
	Mode fs.FileMode
}

func init() {
	register(Kind{Name: "chmod", Idempotent: true, Decode: decodeChmod,
		Example: `chmod: {path: /usr/local/bin/tool, mode: "0755"}`,
		Apply: func(ctx context.Context, env Env, st recipes.Step) (fsops.Result, error) {
			op := st.Op.(*Chmod)
			return fsops.Chmod(ctx, env.Session, op.Path, op.Mode)
		},
	})
}

func (*Chmod) Kind() string       { return "chmod" }
func (c *Chmod) Describe() string { return "chmod: " + c.Path }

func decodeChmod(d *recipes.Decoder, n *yaml.Node) recipes.Op {
	var c Chmod
	d.Fields("chmod", n,
		recipes.Field{Key: "path", Required: true, Decode: func(v *yaml.Node) { c.Path = d.ImagePath("chmod.path", v) }},
		recipes.Field{Key: "mode", Required: true, Decode: func(v *yaml.Node) {
			if m := d.Mode("chmod.mode", v); m != nil {
				c.Mode = *m
			}
		}},
	)
	return &c
}
