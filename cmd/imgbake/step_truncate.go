package main

import (
	"context"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/recipes"
)

func init() {
	registerStep("truncate", `truncate: /etc/machine-id              # empty it in place (mode, owner kept); created if missing`,
		func(ctx context.Context, r *runner, st recipes.Step) (fsops.Result, error) {
			return fsops.Truncate(ctx, r.sess, st.Op.(*recipes.Truncate).Path)
		})
}
