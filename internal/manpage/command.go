package manpage

import (
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/imgbake/imgbake/internal/clihelp"
)

// Command renders app as its section-1 page: NAME, SYNOPSIS, DESCRIPTION,
// every visible command and subcommand with its synopsis, description and
// options, the global options, then the extra sections (exit status,
// environment, files, see also).
func Command(app *cli.App, h Header, extra ...Section) []byte {
	p := newPage(app.Name, 1, "User Commands", h)
	p.heading(1, "NAME")
	p.printf("%s - %s\n\n", app.Name, escape(app.Usage))
	p.heading(1, "SYNOPSIS")
	p.printf("**%s** *COMMAND* \\[*OPTIONS*\\] \\[*ARGUMENTS*...\\]\n\n", app.Name)
	if app.Description != "" {
		p.heading(1, "DESCRIPTION")
		p.text(app.Description)
	}
	p.heading(1, "COMMANDS")
	commands(p, app.Name, app.VisibleCommands())
	if flags := app.VisibleFlags(); len(flags) > 0 {
		p.heading(1, "GLOBAL OPTIONS")
		options(p, flags)
	}
	for _, s := range extra {
		p.section(s)
	}
	return p.roff()
}

func commands(p *page, parent string, cmds []*cli.Command) {
	for _, c := range cmds {
		name := parent + " " + c.Name
		p.heading(3, name)
		synopsis := "**" + name + "**"
		if len(c.Subcommands) > 0 {
			synopsis += " *COMMAND*"
		}
		if len(c.VisibleFlags()) > 0 {
			synopsis += ` \[*OPTIONS*\]`
		}
		if a := strings.TrimSpace(c.ArgsUsage); a != "" {
			synopsis += " " + escape(a)
		}
		p.printf("%s\n\n", synopsis)
		if c.Usage != "" {
			p.text(capitalize(c.Usage) + ".")
		}
		description, examples := splitExamples(c.Description)
		if description != "" {
			p.text(description)
		}
		options(p, c.VisibleFlags())
		if examples != "" {
			p.text(examples)
		}
		commands(p, name, visible(c.Subcommands))
	}
}

func options(p *page, flags []cli.Flag) {
	for _, f := range flags {
		term := "**" + strings.Join(clihelp.FlagNames(f), "**, **") + "**"
		if value := clihelp.FlagPlaceholder(f); value != "" {
			term += " *" + escape(value) + "*"
		}
		p.term(term, clihelp.FlagUsage(f))
	}
}

// splitExamples cuts the Example section that ends a command's description
// (the CLI shows it before the options, a man page after them).
func splitExamples(desc string) (description, examples string) {
	i := strings.LastIndex(desc, "Example")
	if i < 0 || (i > 0 && !strings.HasSuffix(desc[:i], "\n\n")) {
		return desc, ""
	}
	if !strings.HasPrefix(desc[i:], "Example:\n") && !strings.HasPrefix(desc[i:], "Examples:\n") {
		return desc, ""
	}
	return strings.TrimSpace(desc[:i]), desc[i:]
}

func visible(cmds []*cli.Command) []*cli.Command {
	var out []*cli.Command
	for _, c := range cmds {
		if !c.Hidden {
			out = append(out, c)
		}
	}
	return out
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
