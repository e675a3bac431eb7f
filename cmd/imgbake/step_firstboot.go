package main

import (
	"context"
	"os"
	"path/filepath"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/recipes"
)

func init() {
	registerStep("firstboot", `firstboot: {command: "ssh-keygen -A"}   # or script: ./setup.sh; runs once at first boot (systemd oneshot unit)`,
		func(ctx context.Context, r *runner, st recipes.Step) (fsops.Result, error) {
			op := st.Op.(*recipes.Firstboot)
			if op.Script != "" {
				b, err := os.ReadFile(op.Script)
				if err != nil {
					return fsops.Result{}, err
				}
				return fsops.Firstboot(ctx, r.sess, filepath.Base(op.Script), b)
			}
			return fsops.Firstboot(ctx, r.sess, op.Command, fsops.FirstbootCommand(op.Command))
		})
}
