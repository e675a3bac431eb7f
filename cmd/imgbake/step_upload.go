package main

import (
	"context"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/recipes"
)

func init() {
	registerStep("upload", `upload: {src: ./app.conf, dest: /etc/app/app.conf, mode: "0640", owner: root:root}  # one host file to this exact path`,
		func(ctx context.Context, r *runner, st recipes.Step) (fsops.Result, error) {
			op := st.Op.(*recipes.Upload)
			return fsops.Upload(ctx, r.sess, op.Src, op.Dest, fsops.WriteOptions{Mode: op.Mode, Owner: op.Owner})
		})
}
