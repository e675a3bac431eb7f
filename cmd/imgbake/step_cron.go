package main

import (
	"context"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/recipes"
)

func init() {
	registerStep("cron", `cron: {name: backup, schedule: "30 2 * * *", user: root, command: /usr/local/bin/backup}   # /etc/cron.d/backup`,
		func(ctx context.Context, r *runner, st recipes.Step) (fsops.Result, error) {
			op := st.Op.(*recipes.Cron)
			return fsops.Cron(ctx, r.sess, fsops.CronSpec{Name: op.Name, Schedule: op.Schedule, User: op.User, Command: op.Command})
		})
}
