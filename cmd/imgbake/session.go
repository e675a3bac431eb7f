package main

import (
	"github.com/urfave/cli/v2"

	"github.com/imgbake/imgbake/internal/clidocs"
	"github.com/imgbake/imgbake/session"
	"github.com/imgbake/imgbake/session/api"
)

// The session commands parse their flags into requests of package session
// (client, spawn and daemon) and print what comes back; the wire protocol
// is session/api.

// ExitSession is `session exec`'s exit code when the session itself failed
// (not the command), as ssh uses 255.
const ExitSession = api.ExitSession

func sessionCommand() *cli.Command {
	return &cli.Command{
		Name:        "session",
		Usage:       "keep an image open in one booted appliance across many commands (start, exec, put, fetch, run, list, stop)",
		Description: clidocs.Text("session"),
		Subcommands: []*cli.Command{
			sessionStartCommand(),
			sessionExecCommand(),
			sessionPutCommand(),
			sessionFetchCommand(),
			sessionRunCommand(),
			sessionListCommand(),
			sessionStopCommand(),
			sessionServeCommand(),
		},
	}
}

// exitStatus is a session request's outcome as the command's: its error,
// else its exit status (whose details the request's output showed).
func exitStatus(rc int, err error) error {
	if err != nil {
		return err
	}
	if rc != 0 {
		return withCode(rc, errReported)
	}
	return nil
}

func sessionServeCommand() *cli.Command {
	return &cli.Command{
		Name:   "serve",
		Hidden: true,
		Usage:  "the background process of a session (started by session start): serves the session directory's config.json",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "dir", Required: true, Usage: "the session's `DIR`, holding config.json"},
			&cli.StringFlag{Name: "name", Usage: "the session's `NAME`, for ps (it must be the config's)"},
		},
		Action: func(c *cli.Context) error {
			cfg, err := session.ReadConfig(c.String("dir"))
			if err != nil {
				return err
			}
			if n := c.String("name"); n != "" && n != cfg.Name {
				return usageErr("session serve --name %s: %s/config.json is session %s's", n, c.String("dir"), cfg.Name)
			}
			return session.Serve(c.Context, cfg)
		},
	}
}
