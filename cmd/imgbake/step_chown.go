package main

import (
	"context"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/recipes"
)

func init() {
	registerStep("chown", `chown: {path: /srv/data, owner: "www-data:www-data"}   # names from the image's passwd/group, or ids`,
		func(ctx context.Context, r *runner, st recipes.Step) (fsops.Result, error) {
			op := st.Op.(*recipes.Chown)
			return fsops.Chown(ctx, r.sess, op.Path, op.Owner)
		})
}
