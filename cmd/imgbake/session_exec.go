package main

import (
	"io"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/imgbake/imgbake/internal/clidocs"
	"github.com/imgbake/imgbake/session"
	"github.com/imgbake/imgbake/session/api"
)

func sessionExecCommand() *cli.Command {
	return &cli.Command{
		Name:        "exec",
		Usage:       "run a command inside the session's image: stdin, stdout, stderr and the exit status pass through",
		ArgsUsage:   "NAME -- COMMAND [ARG...]",
		Description: clidocs.Text("session exec"),
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "env", Aliases: []string{"e"}, Usage: "set `NAME=VALUE` in the command's environment (repeatable)"},
			&cli.StringFlag{Name: "cwd", Usage: "working `DIR` inside the image (default /)"},
			&cli.DurationFlag{Name: "timeout", Usage: "kill the command after this long"},
			&cli.BoolFlag{Name: "no-stdin", Aliases: []string{"n"}, Usage: "do not send standard input"},
		},
		Action: func(c *cli.Context) error { return sessionExec(c, stdioOf(c)) },
	}
}

func sessionExec(c *cli.Context, stdio Stdio) error {
	args := c.Args().Slice()
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) < 2 {
		return usageErr("session exec: expected NAME -- COMMAND [ARG...]")
	}
	name, argv := args[0], args[1:]
	if argv[0] == "--" {
		argv = argv[1:]
	}
	if len(argv) == 0 {
		return usageErr("session exec: no command after %s", name)
	}
	req := api.Request{Argv: argv, Env: c.StringSlice("env"), Dir: c.String("cwd"), TimeoutMS: c.Duration("timeout").Milliseconds()}
	var in io.Reader
	if !c.Bool("no-stdin") && !isTerminal(stdio.In) {
		in = stdio.In
	}
	return exitStatus(session.Exec(c.Context, name, req, in, stdio.Out, stdio.Err))
}

func isTerminal(stream any) bool {
	f, ok := stream.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func sessionRunCommand() *cli.Command {
	return &cli.Command{
		Name:        "run",
		Usage:       "apply a recipe to the session's image (no new boot)",
		ArgsUsage:   "NAME RECIPE.yaml",
		Description: clidocs.Text("session run"),
		Flags: append([]cli.Flag{
			&cli.BoolFlag{Name: "force", Usage: "run every step even if the image records this recipe as applied"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON event per line"},
			&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "stream commands' output"},
		}, varFlags()...),
		Action: func(c *cli.Context) error {
			stdio := stdioOf(c)
			if c.NArg() != 2 {
				return usageErr("session run: expected NAME RECIPE.yaml")
			}
			name, recipe := c.Args().Get(0), c.Args().Get(1)
			abs, err := filepath.Abs(recipe)
			if err != nil {
				return err
			}
			req := api.Request{Recipe: abs, Vars: c.StringSlice("var"), Force: c.Bool("force"), JSON: c.Bool("json"), Verbose: c.Bool("verbose")}
			if f := c.String("vars-file"); f != "" {
				if req.VarsFile, err = filepath.Abs(f); err != nil {
					return err
				}
			}
			return exitStatus(session.Run(c.Context, name, req, stdio.Out, stdio.Err))
		},
	}
}
