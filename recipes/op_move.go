package recipes

import (
	"strings"

	"go.yaml.in/yaml/v3"
)

// Move renames Src to the path Dest in the image (Dest is the new name,
// not a directory to move into).
type Move struct {
	Src  string
	Dest string
}

func init() { register("move", decodeMove) }

func (*Move) Kind() string       { return "move" }
func (m *Move) Describe() string { return "move: " + m.Src + " -> " + m.Dest }

func decodeMove(d *decoder, n *yaml.Node) Op {
	var m Move
	var destNode *yaml.Node
	ok := d.fields("move", n,
		field{key: "src", required: true, decode: func(v *yaml.Node) {
			m.Src = d.imagePath("move.src", v)
			if m.Src == "/" {
				d.errorf(v, "move.src: refusing to move /")
			}
		}},
		field{key: "dest", required: true, decode: func(v *yaml.Node) {
			destNode = v
			m.Dest = d.filesTarget("move.dest", v)
		}},
	)
	if ok && m.Src != "" && m.Src != "/" && m.Dest != "" && m.Dest != "/" {
		switch {
		case m.Src == m.Dest:
			d.errorf(destNode, "move.dest: %s is the same path as move.src", quote(m.Dest))
		case strings.HasPrefix(m.Dest, m.Src+"/"):
			d.errorf(destNode, "move.dest: %s is inside move.src %s", quote(m.Dest), quote(m.Src))
		}
	}
	return &m
}
