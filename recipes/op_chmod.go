package recipes

import (
	"io/fs"

	"go.yaml.in/yaml/v3"
)

// Chmod sets the permission bits of an existing path (a final symlink is
// followed inside the image).
type Chmod struct {
	Path string
	Mode fs.FileMode
}

func init() { register("chmod", decodeChmod) }

func (*Chmod) Kind() string       { return "chmod" }
func (c *Chmod) Describe() string { return "chmod: " + c.Path }

func decodeChmod(d *decoder, n *yaml.Node) Op {
	var c Chmod
	d.fields("chmod", n,
		field{key: "path", required: true, decode: func(v *yaml.Node) { c.Path = d.imagePath("chmod.path", v) }},
		field{key: "mode", required: true, decode: func(v *yaml.Node) {
			if m := d.mode("chmod.mode", v); m != nil {
				c.Mode = *m
			}
		}},
	)
	return &c
}
