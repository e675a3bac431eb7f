package main

import (
	"context"
	"strings"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/recipes"
)

// The core step kinds: commands, files, copies, hostname.
func init() {
	registerStep("run", `run: echo hello > /root/hello         # /bin/sh -c inside the image (chroot)`,
		func(ctx context.Context, r *runner, st recipes.Step) (fsops.Result, error) {
			op := st.Op.(*recipes.Run)
			o := fsops.RunOptions{Timeout: st.Timeout}
			if r.verbose {
				o.Stdout, o.Stderr = r.errOut, r.errOut
			}
			return fsops.Run(ctx, r.sess, op.Command, o)
		})
	registerStep("write", `write: {path: /etc/motd, content: "Welcome\n", mode: "0644", owner: root:root}`,
		func(ctx context.Context, r *runner, st recipes.Step) (fsops.Result, error) {
			op := st.Op.(*recipes.Write)
			return fsops.WriteFile(ctx, r.sess, op.Path, strings.NewReader(op.Content), fsops.WriteOptions{Mode: op.Mode, Owner: op.Owner})
		})
	registerStep("mkdir", `mkdir: {path: /opt/app, mode: "0755", owner: root:root}   # parents too`,
		func(ctx context.Context, r *runner, st recipes.Step) (fsops.Result, error) {
			op := st.Op.(*recipes.Mkdir)
			return fsops.Mkdir(ctx, r.sess, op.Path, fsops.WriteOptions{Mode: op.Mode, Owner: op.Owner})
		})
	registerStep("delete", `delete: /root/hello                   # file or directory tree; missing is ok`,
		func(ctx context.Context, r *runner, st recipes.Step) (fsops.Result, error) {
			return fsops.Delete(ctx, r.sess, st.Op.(*recipes.Delete).Path)
		})
	registerStep("hostname", `hostname: baked                       # /etc/hostname and the 127.0.1.1 line of /etc/hosts`,
		func(ctx context.Context, r *runner, st recipes.Step) (fsops.Result, error) {
			return fsops.Hostname(ctx, r.sess, st.Op.(*recipes.Hostname).Name)
		})
	registerStep("copy_in", `copy_in: {src: ./files, dest: /opt/app}     # host file/dir (relative to the recipe) into image dir`,
		func(ctx context.Context, r *runner, st recipes.Step) (fsops.Result, error) {
			op := st.Op.(*recipes.CopyIn)
			return fsops.CopyIn(ctx, r.sess, op.Src, op.Dest)
		})
	registerStep("copy_out", `copy_out: {src: /etc/os-release, dest: ./out} # image file/dir into host dir`,
		func(ctx context.Context, r *runner, st recipes.Step) (fsops.Result, error) {
			op := st.Op.(*recipes.CopyOut)
			return fsops.CopyOut(ctx, r.sess, op.Src, op.Dest)
		})
}
