package main

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/imgbake/imgbake/internal/clidocs"
	"github.com/imgbake/imgbake/session"
	"github.com/imgbake/imgbake/session/api"
)

func sessionListCommand() *cli.Command {
	return &cli.Command{
		Name:        "list",
		Usage:       "list the running sessions",
		Description: clidocs.Text("session list"),
		Flags:       []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "one JSON array"}},
		Action: func(c *cli.Context) error {
			stdio := stdioOf(c)
			list, err := session.List(c.Context, stdio.Err)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				enc := json.NewEncoder(stdio.Out)
				enc.SetIndent("", "  ")
				return enc.Encode(list)
			}
			if len(list) == 0 {
				fmt.Fprintln(stdio.Err, "no sessions")
				return nil
			}
			tw := tabwriter.NewWriter(stdio.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tPID\tSTATE\tAGE\tIDLE\tREQUESTS\tOWNER\tDISK")
			for _, s := range list {
				idle := "-"
				if s.IdleMS >= 0 && s.State == api.StateReady {
					idle = (time.Duration(s.IdleMS) * time.Millisecond).Round(time.Second).String()
					if s.Active > 0 {
						idle = "busy"
					}
				}
				owner := "-"
				if s.OwnerPID != 0 {
					owner = strconv.Itoa(s.OwnerPID)
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%d\t%s\t%s\n", s.Name, s.PID, s.State,
					time.Since(s.Started).Round(time.Second), idle, s.Requests, owner, strings.Join(s.Disks, ","))
			}
			return tw.Flush()
		},
	}
}

func sessionStopCommand() *cli.Command {
	return &cli.Command{
		Name:        "stop",
		Usage:       "shut the session's appliance down and commit its changes into the image (--discard: drop them)",
		ArgsUsage:   "NAME",
		Description: clidocs.Text("session stop"),
		Flags:       []cli.Flag{&cli.BoolFlag{Name: "discard", Usage: "drop every change: the image stays byte-identical"}},
		Action: func(c *cli.Context) error {
			stdio := stdioOf(c)
			if c.NArg() != 1 {
				return usageErr("session stop: expected NAME")
			}
			return exitStatus(session.Stop(c.Context, c.Args().First(), c.Bool("discard"), stdio.Out, stdio.Err))
		},
	}
}
