// Package cliargs lets flags follow a command's positional arguments, as
// most tools allow (`imgbake run -a d.qcow2 r.yaml -o out.qcow2`): urfave/cli
// v2 parses with Go's flag package, which stops at the first positional
// argument, so the arguments are reordered before it sees them.
package cliargs

import (
	"fmt"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// completionFlag ends the arguments when a shell asks urfave/cli for
// completions; such a command line is completed as typed.
const completionFlag = "--generate-bash-completion"

// Reorder returns args (args[0] is the program) with the flags of the
// command they run moved before its positional arguments, each flag with
// its value when it takes one. "--" still ends the flags: it is kept,
// before the positional arguments, and what follows it is not touched.
// Commands named in keep (by path, e.g. "session exec") are left alone:
// their arguments carry a command line of their own. So are arguments that
// do not start with a command (global flags such as --help).
//
// A flag that needs a value but ends the arguments is an error: moved
// before the positional arguments it would take the first as its value.
func Reorder(app *cli.App, args []string, keep ...string) ([]string, error) {
	if len(args) < 2 || Completing(args) {
		return args, nil
	}
	cmds, path, i := app.Commands, []string{}, 1
	var cmd *cli.Command
	for i < len(args) {
		next := find(cmds, args[i])
		if next == nil {
			break
		}
		cmd, cmds, path = next, next.Subcommands, append(path, next.Name)
		i++
	}
	if cmd == nil || slices.Contains(keep, strings.Join(path, " ")) {
		return args, nil
	}
	rest, err := reorder(args[i:], specOf(cmd, app.UseShortOptionHandling || cmd.UseShortOptionHandling))
	if err != nil {
		return nil, err
	}
	return append(slices.Clone(args[:i]), rest...), nil
}

// Completing says whether args ask for shell completions (urfave/cli's
// --generate-bash-completion).
func Completing(args []string) bool { return len(args) > 0 && args[len(args)-1] == completionFlag }

func find(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}

// flagSpec says which of a command's flags take a value.
type flagSpec struct {
	takesValue map[string]bool // by every name and alias
	short      bool            // -lR is -l -R (urfave's short option handling)
}

func specOf(cmd *cli.Command, short bool) flagSpec {
	s := flagSpec{takesValue: map[string]bool{}, short: short}
	// The help flag is added to every command when it runs.
	flags := append(slices.Clone(cmd.Flags), cli.HelpFlag)
	for _, f := range flags {
		if f == nil {
			continue
		}
		doc, ok := f.(cli.DocGenerationFlag)
		for _, n := range f.Names() {
			s.takesValue[n] = ok && doc.TakesValue()
		}
	}
	return s
}

func reorder(args []string, spec flagSpec) ([]string, error) {
	var flags, positional, rest []string
	for j := 0; j < len(args); j++ {
		a := args[j]
		switch {
		case a == "--":
			rest = args[j:]
			j = len(args)
		case a == "-" || !strings.HasPrefix(a, "-"):
			positional = append(positional, a)
		default:
			flags = append(flags, a)
			if spec.needsValue(a) {
				if j+1 == len(args) {
					return nil, fmt.Errorf("flag needs an argument: %s", a)
				}
				flags = append(flags, args[j+1])
				j++
			}
		}
	}
	out := flags
	if len(rest) > 0 {
		// "--" before the positional arguments: the flag parser drops it
		// and the command sees every argument, whatever it starts with.
		out = append(out, "--")
		rest = rest[1:]
	}
	return append(append(out, positional...), rest...), nil
}

// needsValue says whether flag argument a takes the next argument as its
// value: a known flag that takes one and has no "=value" of its own, or a
// group of short flags (-va) whose last takes one. An unknown flag takes
// none; the parser reports it.
func (s flagSpec) needsValue(a string) bool {
	name := strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
	if strings.Contains(name, "=") {
		return false
	}
	if v, ok := s.takesValue[name]; ok {
		return v
	}
	if !s.short || strings.HasPrefix(a, "--") || len(name) < 2 {
		return false
	}
	for _, r := range name {
		if _, ok := s.takesValue[string(r)]; !ok {
			return false
		}
	}
	return s.takesValue[name[len(name)-1:]]
}
