package steps

import (
	"context"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/recipes"
	"go.yaml.in/yaml/v3"
)

// Chown sets the owner of an existing path (a final symlink is followed
// inside the image).
type Chown struct {
	Path  string
	Owner string // "user" or "user:group", names (looked up in the image) or ids
}

func init() {
	register(Kind{Name: "chown", Idempotent: true, Decode: decodeChown,
		Example: `chown: {path: /srv/data, owner: "www-data:www-data"}   # names from the image's passwd/group, or ids`,
		Apply: func(ctx context.Context, env Env, st recipes.Step) (fsops.Result, error) {
			op := st.Op.(*Chown)
			return fsops.Chown(ctx, env.Session, op.Path, op.Owner)
		},
	})
}

func (*Chown) Kind() string       { return "chown" }
func (c *Chown) Describe() string { return "chown: " + c.Path }

func decodeChown(d *recipes.Decoder, n *yaml.Node) recipes.Op {
	var c Chown
	d.Fields("chown", n,
		recipes.Field{Key: "path", Required: true, Decode: func(v *yaml.Node) { c.Path = d.ImagePath("chown.path", v) }},
		recipes.Field{Key: "owner", Required: true, Decode: func(v *yaml.Node) { c.Owner = d.Owner("chown.owner", v) }},
	)
	return &c
}
