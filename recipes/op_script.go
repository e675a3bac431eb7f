package recipes

import (
	"path/filepath"

	"go.yaml.in/yaml/v3"
)

// Script uploads a host script into the image, runs it there (chrooted)
// with the interpreter named by its shebang, and removes it.
//
//	script: ./setup.sh
//	script: {src: ./setup.sh, args: [--fast, "2"]}
type Script struct {
	Src  string // absolute host path of a regular file; checked when the recipe loads
	Args []string
}

func init() { register("script", decodeScript) }

func (*Script) Kind() string       { return "script" }
func (s *Script) Describe() string { return "script: " + filepath.Base(s.Src) }

func decodeScript(d *decoder, n *yaml.Node) Op {
	var s Script
	if resolve(n).Kind != yaml.MappingNode {
		if isNull(n) || resolve(n).Kind != yaml.ScalarNode {
			d.typeError("script", "a host path or a mapping with src and args", n)
			return nil
		}
		s.Src = d.filesHostFile("script", n, ", not a script")
		return &s
	}
	d.fields("script", n,
		field{key: "src", required: true, decode: func(v *yaml.Node) { s.Src = d.filesHostFile("script.src", v, ", not a script") }},
		field{key: "args", decode: func(v *yaml.Node) { s.Args = d.filesArgs("script.args", v) }},
	)
	return &s
}
