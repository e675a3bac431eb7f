package main

import (
	"context"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/recipes"
)

func init() {
	registerStep("chmod", `chmod: {path: /usr/local/bin/tool, mode: "0755"}`,
		func(ctx context.Context, r *runner, st recipes.Step) (fsops.Result, error) {
			op := st.Op.(*recipes.Chmod)
			return fsops.Chmod(ctx, r.sess, op.Path, op.Mode)
		})
}
