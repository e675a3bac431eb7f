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
		ex, comment, _ := strings.Cut(k.Example, " # ")
		ex = strings.TrimSpace(ex)
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
		cell := "`" + strings.ReplaceAll(ex, "|", "\\|") + "`"
		if c := strings.TrimSpace(comment); c != "" {
			cell += " — " + strings.ReplaceAll(c, "|", "\\|")
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", k.Name, cell, strings.Join(props, ", "))
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
