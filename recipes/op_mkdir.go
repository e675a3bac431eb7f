package recipes

import (
	"io/fs"

	"go.yaml.in/yaml/v3"
)

// Mkdir creates a directory in the image, and any missing parents.
type Mkdir struct {
	Path  string
	Mode  *fs.FileMode // nil: keep an existing directory's mode, else 0755
	Owner string       // "user" or "user:group", names or ids; "" leaves it alone
}

func init() { register("mkdir", decodeMkdir) }

func (*Mkdir) Kind() string       { return "mkdir" }
func (m *Mkdir) Describe() string { return "mkdir: " + m.Path }

func decodeMkdir(d *decoder, n *yaml.Node) Op {
	var m Mkdir
	d.fields("mkdir", n,
		field{key: "path", required: true, decode: func(v *yaml.Node) { m.Path = d.imagePath("mkdir.path", v) }},
		field{key: "mode", decode: func(v *yaml.Node) { m.Mode = d.mode("mkdir.mode", v) }},
		field{key: "owner", decode: func(v *yaml.Node) { m.Owner = d.owner("mkdir.owner", v) }},
	)
	return &m
}
