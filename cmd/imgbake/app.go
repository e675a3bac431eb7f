package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/imgbake/imgbake/bake"
	"github.com/imgbake/imgbake/internal/cliargs"
	"github.com/imgbake/imgbake/internal/clidocs"
	"github.com/imgbake/imgbake/internal/clihelp"
	"github.com/imgbake/imgbake/recipes"
)

// Exit codes (bake owns their meaning; the session protocol carries them).
const (
	ExitOK          = bake.ExitOK
	ExitStepFailed  = bake.ExitStepFailed
	ExitUsage       = bake.ExitUsage
	ExitImage       = bake.ExitImage
	ExitInterrupted = bake.ExitInterrupted
	ExitTerminated  = bake.ExitTerminated
)

// Stdio are the streams a command uses, so tests can run it in-process.
type Stdio struct {
	In  io.Reader
	Out io.Writer
	Err io.Writer
}

// exitError is an exit code a command chose (withCode), as opposed to one
// bake derived from an error's class: opFailed leaves it alone.
type exitError struct{ err error }

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &exitError{bake.WithCode(code, err)}
}

func usageErr(format string, args ...any) error {
	return withCode(ExitUsage, fmt.Errorf(format, args...))
}

// Execute runs imgbake with args (args[0] is the program name) and returns
// the exit code. main is a thin wrapper so tests run the CLI in-process.
func Execute(ctx context.Context, stdio Stdio, args []string) int {
	app := newApp(stdio)
	if cliargs.Completing(args) {
		// With short-option handling, urfave/cli v2 gives up on a partial
		// flag (--chec) and its completion then dereferences a nil flag set.
		app.UseShortOptionHandling = false
	}
	args, err := reorderArgs(app, args)
	if err != nil {
		err = withCode(ExitUsage, err)
	} else {
		err = app.RunContext(ctx, args)
	}
	if err == nil {
		return ExitOK
	}
	code := exitCode(ctx, err)
	var el recipes.ErrorList
	if errors.As(err, &el) {
		for _, e := range el {
			fmt.Fprintln(stdio.Err, e.Error())
		}
		fmt.Fprintf(stdio.Err, "imgbake: invalid recipe (%d problem%s)\n", len(el), plural(len(el)))
	} else if !errors.Is(err, errReported) {
		fmt.Fprintf(stdio.Err, "imgbake: %v\n", err)
	}
	return code
}

// reorderArgs lets flags follow the positional arguments of every command
// but session exec, whose arguments after NAME are a command line of their
// own.
func reorderArgs(app *cli.App, args []string) ([]string, error) {
	return cliargs.Reorder(app, args, "session exec")
}

// errReported marks errors whose details were already printed.
var errReported = errors.New("reported")

func exitCode(ctx context.Context, err error) int {
	if ctx.Err() != nil || errors.Is(err, context.Canceled) {
		if sig, ok := caughtSignal.Load().(os.Signal); ok {
			return exitForSignal(sig)
		}
		return ExitInterrupted
	}
	code := bake.ExitCode(err)
	if bake.Class(err) == nil && code == ExitImage && !bake.IsImageError(err) {
		// urfave/cli reports flag problems as plain errors.
		if strings.Contains(err.Error(), "flag provided but not defined") || strings.Contains(err.Error(), "Required flag") {
			return ExitUsage
		}
	}
	return code
}

// caughtSignal is the signal that cancelled the run, if any.
var caughtSignal atomic.Value

func exitForSignal(sig os.Signal) int {
	if sig == syscall.SIGTERM {
		return ExitTerminated
	}
	return ExitInterrupted
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func newApp(stdio Stdio) *cli.App {
	app := &cli.App{
		Name:                   "imgbake",
		Usage:                  "customize VM disk images offline, one appliance boot per image",
		Description:            clidocs.AppDescription,
		Version:                bake.Version,
		Reader:                 stdio.In,
		Writer:                 stdio.Out,
		ErrWriter:              stdio.Err,
		UseShortOptionHandling: true,
		HideHelpCommand:        true,
		// A value is one value: -m DEV:/:subvol=root,noatime, --var
		// LIST=a,b and -e s/a,b/c/ keep their commas.
		DisableSliceFlagSeparator: true,
		EnableBashCompletion:      true,                         // the protocol the completion scripts use
		ExitErrHandler:            func(*cli.Context, error) {}, // Execute maps errors to codes
		Commands: []*cli.Command{
			runCommand(),
			bakeCommand(),
			inspectCommand(),
			applianceCommand(),
			stepsCommand(),
			checkCommand(),
			shellCommand(),
			sessionCommand(),
			lsCommand(),
			catCommand(),
			copyInCommand(),
			copyOutCommand(),
			editCommand(),
			resetPasswordCommand(),
			sysprepCommand(),
			fstabCommand(),
			fsckCommand(),
			sparsifyCommand(),
			resizeCommand(),
			cacheCommand(),
			versionCommand(),
			completionCommand(),
			genManCommand(),
		},
	}
	app.OnUsageError = func(c *cli.Context, err error, _ bool) error { return withCode(ExitUsage, err) }
	setUsageError(app.Commands, app.OnUsageError)
	clihelp.Install(app, clidocs.ExitCodesHelp())
	return app
}

// setUsageError makes flag errors of every command and subcommand exit 2.
func setUsageError(cmds []*cli.Command, f cli.OnUsageErrorFunc) {
	for _, c := range cmds {
		c.OnUsageError = f
		setUsageError(c.Subcommands, f)
	}
}
