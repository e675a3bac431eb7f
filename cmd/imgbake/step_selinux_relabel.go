package main

import (
	"context"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/recipes"
)

func init() {
	registerStep("selinux_relabel", `selinux_relabel: true                 # touch /.autorelabel if SELinux is enabled; otherwise nothing`,
		func(ctx context.Context, r *runner, st recipes.Step) (fsops.Result, error) {
			return fsops.SELinuxRelabel(ctx, r.sess)
		})
}
