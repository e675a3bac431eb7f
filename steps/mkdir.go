package steps

import (
	"context"
	"io/fs"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/recipes"
	"go.yaml.in/yaml/v3"
)

// Mkdir creates a directory in the image, and any missing parents.
type Mkdir struct {
	Path  string
	Mode  *fs.FileMode // nil: keep an existing directory's mode, else 0755
	Owner string       // "user" or "user:group", names or ids; "" leaves it alone
}

func init() {
	register(Kind{Name: "mkdir", Idempotent: true, Decode: decodeMkdir,
		Example: `mkdir: {path: /opt/app, mode: "0755", owner: root:root}   # parents too`,
		Apply: func(ctx context.Context, env Env, st recipes.Step) (fsops.Result, error) {
			op := st.Op.(*Mkdir)
			return fsops.Mkdir(ctx, env.Session, op.Path, fsops.WriteOptions{Mode: op.Mode, Owner: op.Owner})
		},
	})
}

func (*Mkdir) Kind() string       { return "mkdir" }
func (m *Mkdir) Describe() string { return "mkdir: " + m.Path }

func decodeMkdir(d *recipes.Decoder, n *yaml.Node) recipes.Op {
	var m Mkdir
	d.Fields("mkdir", n,
		recipes.Field{Key: "path", Required: true, Decode: func(v *yaml.Node) { m.Path = d.ImagePath("mkdir.path", v) }},
		recipes.Field{Key: "mode", Decode: func(v *yaml.Node) { m.Mode = d.Mode("mkdir.mode", v) }},
		recipes.Field{Key: "owner", Decode: func(v *yaml.Node) { m.Owner = d.Owner("mkdir.owner", v) }},
	)
	return &m
}
