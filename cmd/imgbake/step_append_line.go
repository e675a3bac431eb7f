package main

import (
	"context"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/recipes"
)

func init() {
	registerStep("append_line", `append_line: {path: /etc/environment, line: "EDITOR=vim"}   # only when the line is missing; creates the file`,
		func(ctx context.Context, r *runner, st recipes.Step) (fsops.Result, error) {
			op := st.Op.(*recipes.AppendLine)
			return fsops.AppendLine(ctx, r.sess, op.Path, op.Line)
		})
}
