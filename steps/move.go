package steps

import (
	"context"
	"strings"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/recipes"
	"go.yaml.in/yaml/v3"
)

// Move renames Src to the path Dest in the image (Dest is the new name,
// not a directory to move into).
type Move struct {
	Src  string
	Dest string
}

func init() {
	register(Kind{Name: "move", Idempotent: true, Decode: decodeMove,
		Example: `move: {src: /etc/app.conf.dist, dest: /etc/app.conf}   # dest is the new path; ok when already moved`,
		Apply: func(ctx context.Context, env Env, st recipes.Step) (fsops.Result, error) {
			op := st.Op.(*Move)
			return fsops.Move(ctx, env.Session, op.Src, op.Dest)
		},
	})
}

func (*Move) Kind() string       { return "move" }
func (m *Move) Describe() string { return "move: " + m.Src + " -> " + m.Dest }

func decodeMove(d *recipes.Decoder, n *yaml.Node) recipes.Op {
	var m Move
	var destNode *yaml.Node
	ok := d.Fields("move", n,
		recipes.Field{Key: "src", Required: true, Decode: func(v *yaml.Node) {
			m.Src = d.ImagePath("move.src", v)
			if m.Src == "/" {
				d.Errorf(v, "move.src: refusing to move /")
			}
		}},
		recipes.Field{Key: "dest", Required: true, Decode: func(v *yaml.Node) {
			destNode = v
			m.Dest = d.FilesTarget("move.dest", v)
		}},
	)
	if ok && m.Src != "" && m.Src != "/" && m.Dest != "" && m.Dest != "/" {
		switch {
		case m.Src == m.Dest:
			d.Errorf(destNode, "move.dest: %s is the same path as move.src", recipes.Quote(m.Dest))
		case strings.HasPrefix(m.Dest, m.Src+"/"):
			d.Errorf(destNode, "move.dest: %s is inside move.src %s", recipes.Quote(m.Dest), recipes.Quote(m.Src))
		}
	}
	return &m
}
