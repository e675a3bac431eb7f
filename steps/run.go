package steps

import (
	"context"
	"strings"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/recipes"
	"go.yaml.in/yaml/v3"
)

// Run runs a shell command inside the image with /bin/sh -c.
type Run struct {
	Command string
}

func init() {
	register(Kind{Name: "run", Command: true, Decode: decodeRun,
		Example: `run: echo hello > /root/hello         # /bin/sh -c inside the image (chroot)`,
		Apply: func(ctx context.Context, env Env, st recipes.Step) (fsops.Result, error) {
			op := st.Op.(*Run)
			o := fsops.RunOptions{Timeout: st.Timeout}
			o.Stdout, o.Stderr = env.Live, env.Live
			return fsops.Run(ctx, env.Session, op.Command, o)
		},
	})
}

func (*Run) Kind() string       { return "run" }
func (r *Run) Describe() string { return "run: " + recipes.FirstLine(r.Command) }

func decodeRun(d *recipes.Decoder, n *yaml.Node) recipes.Op {
	if recipes.IsNull(n) {
		d.Errorf(n, "run: command is empty")
		return nil
	}
	cmd, ok := d.Str("run", n)
	switch {
	case !ok:
		return nil
	case strings.TrimSpace(cmd) == "":
		d.Errorf(n, "run: command is empty")
	case strings.ContainsRune(cmd, 0):
		// It could not be passed as an argument to sh.
		d.Errorf(n, "run: command contains a NUL byte")
	}
	return &Run{Command: cmd}
}
