package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/imgbake/imgbake/bake"
	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/internal/clidocs"
)

func shellCommand() *cli.Command {
	return &cli.Command{
		Name:        "shell",
		Usage:       "an interactive shell inside the image (chroot) on a real terminal",
		Description: clidocs.Text("shell"),
		Flags: append(diskFlags(),
			&cli.BoolFlag{Name: "ro", Usage: "open the image read-only"},
			&cli.BoolFlag{Name: "rescue", Usage: "the appliance's shell, image under /sysroot"},
		),
		Action: func(c *cli.Context) error {
			stdio := stdioOf(c)
			if c.NArg() != 0 {
				return usageErr("shell takes no arguments (got %q)", c.Args().Slice())
			}
			return shellAction(c, stdio)
		},
	}
}

func shellAction(c *cli.Context, stdio Stdio) error {
	ctx := c.Context
	// The rescue appliance, so the fallback shell is there when the image
	// has none; it boots as fast as the normal one.
	op, err := openImage(ctx, c, stdio, bake.Options{ReadOnly: c.Bool("ro"), Rescue: true})
	if err != nil {
		return err
	}
	args := fsops.ExecArgs{Dir: "/", Env: []string{"debian_chroot=imgbake", "IMGBAKE=1"}}
	rescue := c.Bool("rescue")
	if !rescue {
		shell, ok := op.InteractiveShell(ctx)
		if ok {
			args.Argv = []string{shell}
		} else {
			fmt.Fprintln(stdio.Err, "imgbake: the image has no working /bin/sh; starting the appliance's rescue shell (the image is under /sysroot)")
			rescue = true
		}
	}
	if rescue {
		args.Argv, args.NoChroot, args.Dir = []string{"sh"}, true, fsops.Sysroot
		args.Env = append(args.Env, "PS1=imgbake-rescue:$PWD# ", "PATH=/rescue/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	}
	if !c.Bool("ro") {
		fmt.Fprintln(stdio.Err, "imgbake: changes are written back to the image when the shell exits")
	}
	res, err := op.RunTerminal(ctx, args, stdio.In, stdio.Out)
	if err != nil {
		op.Abort()
		return withCode(ExitImage, err)
	}
	if err := op.Finish(ctx, !c.Bool("ro")); err != nil {
		return err
	}
	if res.RC != 0 {
		fmt.Fprintf(stdio.Err, "imgbake: the shell exited with status %d\n", res.RC)
	}
	return nil
}
