package main

import (
	"context"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/recipes"
)

func init() {
	registerStep("install", `install: [nginx, haveged]               # the image's package manager (apt, dnf, yum, zypper, apk, pacman); ok if installed`,
		func(ctx context.Context, r *runner, st recipes.Step) (fsops.Result, error) {
			return fsops.Install(ctx, r.sess, st.Op.(*recipes.Install).Packages, r.packageOptions(st))
		})
	registerStep("uninstall", `uninstall: [telnet]                     # ok if not installed`,
		func(ctx context.Context, r *runner, st recipes.Step) (fsops.Result, error) {
			return fsops.Uninstall(ctx, r.sess, st.Op.(*recipes.Uninstall).Packages, r.packageOptions(st))
		})
	registerStep("update", `update: true                            # upgrade every package; changed only if something was`,
		func(ctx context.Context, r *runner, st recipes.Step) (fsops.Result, error) {
			return fsops.Update(ctx, r.sess, r.packageOptions(st))
		})
}

func (r *runner) packageOptions(st recipes.Step) fsops.PackageOptions {
	o := fsops.PackageOptions{Manager: r.facts.PackageManager, Network: r.network, Run: fsops.RunOptions{Timeout: st.Timeout}}
	if r.verbose {
		o.Run.Stdout, o.Run.Stderr = r.errOut, r.errOut
	}
	return o
}
