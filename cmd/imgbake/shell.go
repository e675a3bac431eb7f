package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

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
		shell, ok := imageShell(ctx, op.Session())
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
	res, err := runTerminal(ctx, op, args, stdio)
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

// imageShell picks the image's interactive shell, if it has a usable one.
func imageShell(ctx context.Context, s fsops.Session) (string, bool) {
	for _, sh := range []string{"/bin/bash", "/bin/sh"} {
		// A real start, not a stat: a dangling /bin/sh -> dash or a shell
		// missing its libraries must fall back to the rescue shell.
		res, err := fsops.Exec(ctx, s, []string{sh, "-c", "exit 0"}, fsops.RunOptions{})
		if err == nil && res.RC == 0 {
			return sh, true
		}
	}
	return "", false
}

// runTerminal connects the local terminal to a TTY command in the
// appliance: raw mode, window size and its changes, and everything typed
// (Ctrl-C included) goes to the guest.
func runTerminal(ctx context.Context, op *bake.Image, args fsops.ExecArgs, stdio Stdio) (fsops.ExecResult, error) {
	in := stdio.In
	resize := make(chan fsops.Winsize, 1)
	if f, ok := stdio.In.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fd := int(f.Fd())
		old, err := term.MakeRaw(fd)
		if err != nil {
			return fsops.ExecResult{}, fmt.Errorf("terminal raw mode: %w", err)
		}
		defer term.Restore(fd, old)
		if w, h, err := term.GetSize(fd); err == nil {
			args.Cols, args.Rows = uint16(w), uint16(h)
		}
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, syscall.SIGWINCH)
		defer signal.Stop(winch)
		go func() {
			for range winch {
				if w, h, err := term.GetSize(fd); err == nil {
					select {
					case resize <- fsops.Winsize{Rows: uint16(h), Cols: uint16(w)}:
					default:
					}
				}
			}
		}()
		// A dup, so the reader goroutine left blocked after the shell
		// exits reads from a descriptor we can close.
		// Non-blocking, so the poller can interrupt that read; the terminal
		// is put back to blocking for whoever reads it next (the user's shell).
		if dup, err := syscall.Dup(fd); err == nil && syscall.SetNonblock(dup, true) == nil {
			df := os.NewFile(uintptr(dup), "stdin")
			defer func() {
				df.Close()
				_ = syscall.SetNonblock(fd, false)
			}()
			in = df
		}
	}
	if v := os.Getenv("TERM"); v != "" {
		args.Term = v
	}
	res, err := op.Session().ExecTTY(ctx, args, in, stdio.Out, resize)
	if err != nil && errors.Is(err, fs.ErrNotExist) {
		return res, fmt.Errorf("starting %s: %w", args.Argv[0], err)
	}
	return res, err
}
