package main

import (
	"context"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/recipes"
)

func init() {
	registerStep("script", `script: {src: ./setup.sh, args: [--fast]}   # or script: ./setup.sh; uploaded, run in the image by its shebang, removed`,
		func(ctx context.Context, r *runner, st recipes.Step) (fsops.Result, error) {
			op := st.Op.(*recipes.Script)
			o := fsops.RunOptions{Timeout: st.Timeout}
			if r.verbose {
				o.Stdout, o.Stderr = r.errOut, r.errOut
			}
			return fsops.Script(ctx, r.sess, op.Src, op.Args, o)
		})
}
