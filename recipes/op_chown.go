package recipes

import "go.yaml.in/yaml/v3"

// Chown sets the owner of an existing path (a final symlink is followed
// inside the image).
type Chown struct {
	Path  string
	Owner string // "user" or "user:group", names (looked up in the image) or ids
}

func init() { register("chown", decodeChown) }

func (*Chown) Kind() string       { return "chown" }
func (c *Chown) Describe() string { return "chown: " + c.Path }

func decodeChown(d *decoder, n *yaml.Node) Op {
	var c Chown
	d.fields("chown", n,
		field{key: "path", required: true, decode: func(v *yaml.Node) { c.Path = d.imagePath("chown.path", v) }},
		field{key: "owner", required: true, decode: func(v *yaml.Node) { c.Owner = d.owner("chown.owner", v) }},
	)
	return &c
}
