package main

import (
	"context"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/recipes"
)

func init() {
	registerStep("service", `service: {name: fstrim.timer, enabled: false}   # enabled / masked, offline from the unit's [Install] section`,
		func(ctx context.Context, r *runner, st recipes.Step) (fsops.Result, error) {
			op := st.Op.(*recipes.Service)
			return fsops.Service(ctx, r.sess, fsops.ServiceSpec{Name: op.Name, Enabled: op.Enabled, Masked: op.Masked})
		})
}
