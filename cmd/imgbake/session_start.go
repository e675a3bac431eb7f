package main

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/imgbake/imgbake/bake"
	"github.com/imgbake/imgbake/internal/clidocs"
	"github.com/imgbake/imgbake/session"
	"github.com/imgbake/imgbake/session/api"
)

func sessionStartCommand() *cli.Command {
	return &cli.Command{
		Name:        "start",
		Usage:       "boot the appliance for an image and keep it; prints the session name when it is ready",
		ArgsUsage:   " ",
		Description: clidocs.Text("session start"),
		Flags: append(diskFlags(),
			&cli.StringFlag{Name: "name", Usage: "session `NAME` (default: from the disk's file name)"},
			&cli.IntFlag{Name: "owner-pid", Usage: "stop and discard when process `PID` exits"},
			&cli.DurationFlag{Name: "idle-timeout", Value: 15 * time.Minute, Usage: "stop and discard after this long without a request (0: never)"},
			&cli.BoolFlag{Name: "network", Usage: "give the appliance a network: every command in the image has it and resolves through the appliance's resolver"},
			&cli.BoolFlag{Name: "reuse", Usage: "if session --name is already running on the same disk, use it (wait until it is ready)"},
			&cli.BoolFlag{Name: "attach", Usage: "only use the running session --name on the same disk: fail if it is not running (never boot a new one)"},
			&cli.BoolFlag{Name: "print-socket", Usage: "print the session's control socket on a second line (for clients speaking its protocol, package session/api)"},
		),
		Action: func(c *cli.Context) error { return sessionStart(c, stdioOf(c)) },
	}
}

// sessionStart hands the parsed disk options, unchanged, to the session's
// daemon (session.Start writes them into its config).
func sessionStart(c *cli.Context, stdio Stdio) error {
	if c.NArg() != 0 {
		return usageErr("session start takes no arguments (got %q): use -a DISK", c.Args().Slice())
	}
	disks, o, err := diskOptions(c, stdio, bake.Options{Network: c.Bool("network")})
	if err != nil {
		return err
	}
	st, err := session.Start(c.Context, session.StartConfig{Name: c.String("name"), Disks: disks, Options: o,
		IdleTimeout: c.Duration("idle-timeout"), OwnerPID: c.Int("owner-pid"), Reuse: c.Bool("reuse"), Attach: c.Bool("attach")})
	if err != nil {
		return err
	}
	fmt.Fprintln(stdio.Out, st.Name)
	if c.Bool("print-socket") {
		base, err := api.Base()
		if err != nil {
			return err
		}
		fmt.Fprintln(stdio.Out, filepath.Join(base, st.Name, api.SockFile))
	}
	if c.Bool("verbose") && st.Boot != "" {
		fmt.Fprintf(stdio.Err, "imgbake: session %s ready: %s\n", st.Name, st.Boot)
	}
	return nil
}
