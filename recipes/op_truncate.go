package recipes

import "go.yaml.in/yaml/v3"

// Truncate empties the regular file at Path in place (created empty when
// missing).
type Truncate struct {
	Path string
}

func init() { register("truncate", decodeTruncate) }

func (*Truncate) Kind() string       { return "truncate" }
func (t *Truncate) Describe() string { return "truncate: " + t.Path }

func decodeTruncate(d *decoder, n *yaml.Node) Op {
	return &Truncate{Path: d.filesTarget("truncate", n)}
}
