package main

import (
	"encoding/json"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/imgbake/imgbake/internal/clidocs"
	"github.com/imgbake/imgbake/internal/report"
	"github.com/imgbake/imgbake/session"
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
			return report.Sessions(stdio.Out, list)
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
