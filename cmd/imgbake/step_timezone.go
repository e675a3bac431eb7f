package main

import (
	"context"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/recipes"
)

func init() {
	registerStep("timezone", `timezone: Europe/Berlin                # /etc/localtime -> /usr/share/zoneinfo/Europe/Berlin (+ /etc/timezone on Debian)`,
		func(ctx context.Context, r *runner, st recipes.Step) (fsops.Result, error) {
			return fsops.Timezone(ctx, r.sess, st.Op.(*recipes.Timezone).Name)
		})
}
