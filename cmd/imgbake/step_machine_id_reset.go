package main

import (
	"context"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/recipes"
)

func init() {
	registerStep("machine_id_reset", `machine_id_reset: true                # empty /etc/machine-id: each clone gets its own`,
		func(ctx context.Context, r *runner, st recipes.Step) (fsops.Result, error) {
			return fsops.MachineIDReset(ctx, r.sess)
		})
}
