package recipes

import (
	"io/fs"

	"go.yaml.in/yaml/v3"
)

// Write creates or replaces a file in the image.
type Write struct {
	Path    string
	Content string
	Mode    *fs.FileMode // nil: keep an existing file's mode, else 0644
	Owner   string       // "user" or "user:group", names or ids; "" leaves it alone
}

func init() { register("write", decodeWrite) }

func (*Write) Kind() string       { return "write" }
func (w *Write) Describe() string { return "write: " + w.Path }

func decodeWrite(d *decoder, n *yaml.Node) Op {
	var w Write
	d.fields("write", n,
		field{key: "path", required: true, decode: func(v *yaml.Node) {
			w.Path = d.imagePath("write.path", v)
			if w.Path == "/" {
				d.errorf(v, "write.path: / is a directory")
			}
		}},
		field{key: "content", required: true, decode: func(v *yaml.Node) { w.Content, _ = d.str("write.content", v) }},
		field{key: "mode", decode: func(v *yaml.Node) { w.Mode = d.mode("write.mode", v) }},
		field{key: "owner", decode: func(v *yaml.Node) { w.Owner = d.owner("write.owner", v) }},
	)
	return &w
}
