package main

import (
	"context"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/recipes"
)

func init() {
	registerStep("move", `move: {src: /etc/app.conf.dist, dest: /etc/app.conf}   # dest is the new path; ok when already moved`,
		func(ctx context.Context, r *runner, st recipes.Step) (fsops.Result, error) {
			op := st.Op.(*recipes.Move)
			return fsops.Move(ctx, r.sess, op.Src, op.Dest)
		})
}
