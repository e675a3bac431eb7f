package recipes

import "go.yaml.in/yaml/v3"

// AppendLine adds Line to the file at Path unless the file already has
// that exact line; a missing file is created holding just the line.
type AppendLine struct {
	Path string
	Line string // without its newline
}

func init() { register("append_line", decodeAppendLine) }

func (*AppendLine) Kind() string       { return "append_line" }
func (a *AppendLine) Describe() string { return "append_line: " + a.Path }

func decodeAppendLine(d *decoder, n *yaml.Node) Op {
	var a AppendLine
	d.fields("append_line", n,
		field{key: "path", required: true, decode: func(v *yaml.Node) { a.Path = d.filesTarget("append_line.path", v) }},
		field{key: "line", required: true, decode: func(v *yaml.Node) { a.Line = d.filesLine("append_line.line", v) }},
	)
	return &a
}
