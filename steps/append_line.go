package steps

import (
	"context"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/recipes"
	"go.yaml.in/yaml/v3"
)

// AppendLine adds Line to the file at Path unless the file already has
// that exact line; a missing file is created holding just the line.
type AppendLine struct {
	Path string
	Line string // without its newline
}

func init() {
	register(Kind{Name: "append_line", Idempotent: true, Decode: decodeAppendLine,
		Example: `append_line: {path: /etc/environment, line: "EDITOR=vim"}   # only when the line is missing; creates the file`,
		Apply: func(ctx context.Context, env Env, st recipes.Step) (fsops.Result, error) {
			op := st.Op.(*AppendLine)
			return fsops.AppendLine(ctx, env.Session, op.Path, op.Line)
		},
	})
}

func (*AppendLine) Kind() string       { return "append_line" }
func (a *AppendLine) Describe() string { return "append_line: " + a.Path }

func decodeAppendLine(d *recipes.Decoder, n *yaml.Node) recipes.Op {
	var a AppendLine
	d.Fields("append_line", n,
		recipes.Field{Key: "path", Required: true, Decode: func(v *yaml.Node) { a.Path = d.FilesTarget("append_line.path", v) }},
		recipes.Field{Key: "line", Required: true, Decode: func(v *yaml.Node) { a.Line = d.FilesLine("append_line.line", v) }},
	)
	return &a
}
