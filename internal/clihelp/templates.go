package clihelp

import (
	"io"
	"strings"
	"sync"

	"github.com/urfave/cli/v2"
)

// The templates replace urfave/cli's, whose flag column is as wide as the
// longest flag with its placeholder (over 100 characters for run).
const (
	appTemplate = `NAME:
   {{.Name}} - {{hang .Usage (offset .Name 6)}}

USAGE:
   {{.Name}} COMMAND [OPTIONS] [ARGUMENTS...]{{if .Version}}{{if not .HideVersion}}

VERSION:
   {{.Version}}{{end}}{{end}}{{if .Description}}

DESCRIPTION:
   {{fill .Description 3}}{{end}}{{if .VisibleCommands}}

COMMANDS:{{commands .VisibleCommands}}{{end}}{{if .VisibleFlags}}

GLOBAL OPTIONS:{{flags .VisibleFlags}}{{end}}
`
	commandTemplate = `NAME:
   {{.HelpName}} - {{hang .Usage (offset .HelpName 6)}}

USAGE:
   {{usage .}}{{if .Description}}

DESCRIPTION:
   {{fill .Description 3}}{{end}}{{if .VisibleFlags}}

OPTIONS:{{flags .VisibleFlags}}{{end}}
`
	subcommandTemplate = `NAME:
   {{.HelpName}} - {{hang .Usage (offset .HelpName 6)}}

USAGE:
   {{.HelpName}} COMMAND [OPTIONS] [ARGUMENTS...]{{if .Description}}

DESCRIPTION:
   {{fill .Description 3}}{{end}}{{if .VisibleCommands}}

COMMANDS:{{commands .VisibleCommands}}{{end}}{{if .VisibleFlags}}

OPTIONS:{{flags .VisibleFlags}}{{end}}
`
)

var installPrinter sync.Once

// Install lays the help of app and all its commands out at Width columns;
// appendix (e.g. the exit codes) ends the app's help.
func Install(app *cli.App, appendix string) {
	installPrinter.Do(func() {
		// urfave/cli renders help with a package-level printer; this one
		// adds the functions the templates use.
		cli.HelpPrinter = func(w io.Writer, templ string, data any) {
			cli.HelpPrinterCustom(w, templ, data, map[string]any{
				"fill":     func(text string, indent int) string { return Fill(text, indent, Width) },
				"hang":     func(text string, first int) string { return hanging(text, first, first, Width) },
				"flags":    flagList,
				"commands": commandList,
				"usage":    Usage,
			})
		}
	})
	app.CustomAppHelpTemplate = appTemplate + appendix
	setTemplates(app.Commands)
}

func setTemplates(cmds []*cli.Command) {
	for _, c := range cmds {
		c.CustomHelpTemplate = commandTemplate
		if len(c.Subcommands) > 0 {
			c.CustomHelpTemplate = subcommandTemplate
		}
		// Help is the --help flag, as for the app: no "help" subcommand
		// (urfave/cli adds one even to commands without subcommands, where
		// it shadows an argument named help and is offered as a completion).
		c.HideHelpCommand = true
		setTemplates(c.Subcommands)
	}
}

// Usage is a command's synopsis: its full name, [OPTIONS] when it has
// flags, and its arguments.
func Usage(c *cli.Command) string {
	if c.UsageText != "" {
		return c.UsageText
	}
	s := c.HelpName
	if s == "" {
		s = c.Name
	}
	if len(c.VisibleFlags()) > 0 {
		s += " [OPTIONS]"
	}
	if a := strings.TrimSpace(c.ArgsUsage); a != "" {
		s += " " + a
	}
	return s
}
