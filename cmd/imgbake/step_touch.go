package main

import (
	"context"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/recipes"
)

func init() {
	registerStep("touch", `touch: /etc/cloud/cloud-init.disabled   # creates an empty file if missing; an existing one (and its mtime) is left alone`,
		func(ctx context.Context, r *runner, st recipes.Step) (fsops.Result, error) {
			return fsops.Touch(ctx, r.sess, st.Op.(*recipes.Touch).Path)
		})
}
