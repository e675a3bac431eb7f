package recipes

import "go.yaml.in/yaml/v3"

// Touch creates an empty file when nothing exists at Path. An existing
// path is left alone, mtime included, so a second run changes nothing.
type Touch struct {
	Path string
}

func init() { register("touch", decodeTouch) }

func (*Touch) Kind() string       { return "touch" }
func (t *Touch) Describe() string { return "touch: " + t.Path }

func decodeTouch(d *decoder, n *yaml.Node) Op {
	return &Touch{Path: d.filesTarget("touch", n)}
}
