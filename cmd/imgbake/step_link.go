package main

import (
	"context"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/recipes"
)

func init() {
	registerStep("link", `link: {target: /usr/share/zoneinfo/UTC, path: /etc/localtime}   # symlink; ok when it already points there`,
		func(ctx context.Context, r *runner, st recipes.Step) (fsops.Result, error) {
			op := st.Op.(*recipes.Link)
			return fsops.Link(ctx, r.sess, op.Target, op.Path)
		})
}
