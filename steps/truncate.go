package steps

import (
	"context"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/recipes"
	"go.yaml.in/yaml/v3"
)

// Truncate empties the regular file at Path in place (created empty when
// missing).
type Truncate struct {
	Path string
}

func init() {
	register(Kind{Name: "truncate", Idempotent: true, Decode: decodeTruncate,
		Example: `truncate: /etc/machine-id              # empty it in place (mode, owner kept); created if missing`,
		Apply: func(ctx context.Context, env Env, st recipes.Step) (fsops.Result, error) {
			return fsops.Truncate(ctx, env.Session, st.Op.(*Truncate).Path)
		},
	})
}

func (*Truncate) Kind() string       { return "truncate" }
func (t *Truncate) Describe() string { return "truncate: " + t.Path }

func decodeTruncate(d *recipes.Decoder, n *yaml.Node) recipes.Op {
	return &Truncate{Path: d.FilesTarget("truncate", n)}
}
