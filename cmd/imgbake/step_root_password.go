package main

import (
	"context"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/recipes"
)

func init() {
	registerStep("root_password", `root_password: {random: ./root-password.txt}   # or password: / file: / locked: true`,
		func(ctx context.Context, r *runner, st recipes.Step) (fsops.Result, error) {
			op := st.Op.(*recipes.RootPassword)
			if op.Locked {
				return fsops.LockPassword(ctx, r.sess, "root")
			}
			pw, note, err := resolveSecret(op.Secret)
			if err != nil {
				return fsops.Result{}, err
			}
			res, err := fsops.SetPassword(ctx, r.sess, "root", pw)
			res.Detail = joinNotes(res.Detail, note)
			return res, err
		})
}
