package main

import (
	"context"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/recipes"
)

func init() {
	registerStep("edit", `edit: {path: /etc/ssh/sshd_config, regexp: '^#?PermitRootLogin .*', replace: "PermitRootLogin no"}  # Go regexp per line; multiline: true for the whole file`,
		func(ctx context.Context, r *runner, st recipes.Step) (fsops.Result, error) {
			op := st.Op.(*recipes.Edit)
			return fsops.Edit(ctx, r.sess, op.Path, op.Regexp, op.Replace, op.Multiline)
		})
}
