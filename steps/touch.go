package steps

import (
	"context"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/recipes"
	"go.yaml.in/yaml/v3"
)

// Touch creates an empty file when nothing exists at Path. An existing
// path is left alone, mtime included, so a second run changes nothing.
type Touch struct {
	Path string
}

func init() {
	register(Kind{Name: "touch", Idempotent: true, Decode: decodeTouch,
		Example: `touch: /etc/cloud/cloud-init.disabled   # creates an empty file if missing; an existing one (and its mtime) is left alone`,
		Apply: func(ctx context.Context, env Env, st recipes.Step) (fsops.Result, error) {
			return fsops.Touch(ctx, env.Session, st.Op.(*Touch).Path)
		},
	})
}

func (*Touch) Kind() string       { return "touch" }
func (t *Touch) Describe() string { return "touch: " + t.Path }

func decodeTouch(d *recipes.Decoder, n *yaml.Node) recipes.Op {
	return &Touch{Path: d.FilesTarget("touch", n)}
}
