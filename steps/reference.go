package steps

import (
	"fmt"
	"strings"

	"github.com/imgbake/imgbake/fsops"
)

// Reference is the step catalog as a Markdown table, for the README (kept
// in sync by a test) and `imgbake steps --markdown`.
func Reference() string {
	var b strings.Builder
	b.WriteString("| kind | example | properties |\n|---|---|---|\n")
	for _, k := range All() {
		ex, comment := k.ExampleParts()
		cell := "`" + strings.ReplaceAll(ex, "|", "\\|") + "`"
		if comment != "" {
			cell += " — " + strings.ReplaceAll(comment, "|", "\\|")
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", k.Name, cell, strings.Join(k.Properties(), ", "))
	}
	return b.String()
}

// SysprepReference is the sysprep operations table as Markdown, for the
// README (kept in sync by the same test as Reference).
func SysprepReference() string {
	var b strings.Builder
	b.WriteString("| operation | default | what it does |\n|---|---|---|\n")
	for _, op := range fsops.SysprepOperations {
		def := "opt-in"
		if op.Default {
			def = "yes"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", op.Name, def, strings.ReplaceAll(op.Description, "|", "\\|"))
	}
	return b.String()
}

// Properties describes the kind's behaviour in a few words each, as the
// README's table and imgbake-recipe(5) show it.
func (k Kind) Properties() []string {
	var props []string
	if k.Command {
		props = append(props, "command (creates, changed_when)")
	}
	if k.Idempotent {
		props = append(props, "idempotent")
	} else if !k.Command {
		props = append(props, "reports changed every run")
	}
	if k.HostEffect {
		props = append(props, "writes to the host (never cached)")
	}
	if k.NeedsNetwork {
		props = append(props, "network")
	}
	return props
}

// ExampleParts splits the kind's Example into its YAML and its comment
// (after " # "; "" when there is none).
func (k Kind) ExampleParts() (yaml, comment string) {
	ex, comment, _ := strings.Cut(k.Example, " # ")
	return strings.TrimSpace(ex), strings.TrimSpace(comment)
}

// CommandKinds names the kinds that may use creates and changed_when.
func CommandKinds() []string {
	var out []string
	for _, k := range All() {
		if k.Command {
			out = append(out, k.Name)
		}
	}
	return out
}
