package steps

import (
	"context"
	"path/filepath"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/recipes"
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

func init() {
	register(Kind{Name: "script", Command: true, Decode: decodeScript,
		Example: `script: {src: ./setup.sh, args: [--fast]}   # or script: ./setup.sh; uploaded, run in the image by its shebang, removed`,
		Apply: func(ctx context.Context, env Env, st recipes.Step) (fsops.Result, error) {
			op := st.Op.(*Script)
			o := fsops.RunOptions{Timeout: st.Timeout}
			o.Stdout, o.Stderr = env.Live, env.Live
			return fsops.Script(ctx, env.Session, op.Src, op.Args, o)
		},
	})
}

func (*Script) Kind() string       { return "script" }
func (s *Script) Describe() string { return "script: " + filepath.Base(s.Src) }

func decodeScript(d *recipes.Decoder, n *yaml.Node) recipes.Op {
	var s Script
	if recipes.ResolveAlias(n).Kind != yaml.MappingNode {
		if recipes.IsNull(n) || recipes.ResolveAlias(n).Kind != yaml.ScalarNode {
			d.TypeError("script", "a host path or a mapping with src and args", n)
			return nil
		}
		s.Src = d.FilesHostFile("script", n, ", not a script")
		return &s
	}
	d.Fields("script", n,
		recipes.Field{Key: "src", Required: true, Decode: func(v *yaml.Node) { s.Src = d.FilesHostFile("script.src", v, ", not a script") }},
		recipes.Field{Key: "args", Decode: func(v *yaml.Node) { s.Args = d.FilesArgs("script.args", v) }},
	)
	return &s
}
