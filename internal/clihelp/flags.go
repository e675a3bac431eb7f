package clihelp

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// FlagSyntax is how a flag is written: its names, the value's placeholder
// after the last, e.g. "-a, --add FILE".
func FlagSyntax(f cli.Flag) string {
	s := strings.Join(FlagNames(f), ", ")
	if p := FlagPlaceholder(f); p != "" {
		s += " " + p
	}
	return s
}

// FlagNames are a flag's names with their dashes, short ones first.
func FlagNames(f cli.Flag) []string {
	var short, long []string
	for _, n := range f.Names() {
		if len(n) == 1 {
			short = append(short, "-"+n)
		} else {
			long = append(long, "--"+n)
		}
	}
	return append(short, long...)
}

// FlagUsage is the flag's usage text (a `NAME` quoted in it is the
// placeholder; the quotes go), its default when it has one worth saying,
// and whether it may be repeated.
func FlagUsage(f cli.Flag) string {
	doc, ok := f.(cli.DocGenerationFlag)
	if !ok {
		return ""
	}
	usage := strings.ReplaceAll(doc.GetUsage(), "`", "")
	if doc.TakesValue() {
		switch def := doc.GetDefaultText(); def {
		case "", "0", "0s", "false", "[]":
		default:
			usage += " (default: " + def + ")"
		}
	}
	if _, ok := f.(*cli.StringSliceFlag); ok && !strings.Contains(usage, "repeat") {
		usage += " (repeatable)"
	}
	return usage
}

// FlagPlaceholder names a flag's value: the word quoted with backticks in its
// usage, else one after its type; "" for a flag without a value.
func FlagPlaceholder(f cli.Flag) string {
	doc, ok := f.(cli.DocGenerationFlag)
	if !ok || !doc.TakesValue() {
		return ""
	}
	usage := doc.GetUsage()
	if i := strings.IndexByte(usage, '`'); i >= 0 {
		if j := strings.IndexByte(usage[i+1:], '`'); j > 0 {
			return usage[i+1 : i+1+j]
		}
	}
	switch f.(type) {
	case *cli.DurationFlag:
		return "DURATION"
	case *cli.IntFlag, *cli.Int64Flag, *cli.UintFlag, *cli.Uint64Flag:
		return "N"
	}
	return "VALUE"
}

// flagList renders flags for a help screen: each one's syntax on its own
// line at column 3, the usage wrapped below it at column 8.
func flagList(flags []cli.Flag) string {
	var b strings.Builder
	for _, f := range flags {
		b.WriteString("\n   " + FlagSyntax(f))
		if u := FlagUsage(f); u != "" {
			b.WriteString("\n        " + strings.Join(Wrap(u, Width-8), "\n        "))
		}
	}
	return b.String()
}

// commandList renders subcommands as a two-column list, the usage wrapped
// in the second column.
func commandList(cmds []*cli.Command) string {
	col := 0
	for _, c := range cmds {
		col = max(col, len(strings.Join(c.Names(), ", ")))
	}
	col += 3 + 2
	var b strings.Builder
	for _, c := range cmds {
		name := strings.Join(c.Names(), ", ")
		b.WriteString("\n   " + name + strings.Repeat(" ", col-3-len(name)))
		b.WriteString(hanging(c.Usage, col, col, Width))
	}
	return b.String()
}
