package steps

import (
	"context"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/recipes"
	"go.yaml.in/yaml/v3"
)

// Delete removes a file or directory (recursively) from the image.
type Delete struct {
	Path string
}

func init() {
	register(Kind{Name: "delete", Idempotent: true, Decode: decodeDelete,
		Example: `delete: /root/hello                   # file or directory tree; missing is ok`,
		Apply: func(ctx context.Context, env Env, st recipes.Step) (fsops.Result, error) {
			return fsops.Delete(ctx, env.Session, st.Op.(*Delete).Path)
		},
	})
}

func (*Delete) Kind() string       { return "delete" }
func (x *Delete) Describe() string { return "delete: " + x.Path }

func decodeDelete(d *recipes.Decoder, n *yaml.Node) recipes.Op {
	p := d.ImagePath("delete", n)
	if p == "/" {
		d.Errorf(n, "delete: refusing to delete /")
	}
	return &Delete{Path: p}
}
