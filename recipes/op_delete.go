package recipes

import "go.yaml.in/yaml/v3"

// Delete removes a file or directory (recursively) from the image.
type Delete struct {
	Path string
}

func init() { register("delete", decodeDelete) }

func (*Delete) Kind() string       { return "delete" }
func (x *Delete) Describe() string { return "delete: " + x.Path }

func decodeDelete(d *decoder, n *yaml.Node) Op {
	p := d.imagePath("delete", n)
	if p == "/" {
		d.errorf(n, "delete: refusing to delete /")
	}
	return &Delete{Path: p}
}
