package manpage

import (
	"fmt"
	"strings"

	"github.com/imgbake/imgbake/recipes"
	"github.com/imgbake/imgbake/steps"
)

// fieldText explains the fields every step may have, keyed by
// recipes.StepFields(): Recipe refuses to render when the two differ.
var fieldText = map[string]string{
	"name":          "Shown in the output instead of a summary of the operation.",
	"when":          "An expression (see EXPRESSIONS); the step is skipped when it is false.",
	"timeout":       "A Go duration (30s, 5m); the step's command is killed inside the appliance when it runs longer.",
	"ignore_errors": "true: a failure is reported as failed (ignored) and the run goes on.",
	"cache":         "false: with run --cache, this step and every one after it always run.",
	"creates":       "(%s) Skip the step when this path exists in the image.",
	"changed_when":  "(%s) An expression over rc, stdout, stderr, the facts and the vars that decides between changed and ok.",
}

// factText explains the facts, keyed by recipes.FactNames().
var factText = map[string]string{
	"os.id":              "The image's os-release ID: debian, ubuntu, fedora, rocky, alpine, ...",
	"os.version_id":      "Its os-release VERSION_ID: 12, 24.04, 9.4, ...",
	"os.family":          "debian, rhel, suse, alpine, arch, gentoo, void, ... (from ID and ID_LIKE).",
	"os.package_manager": "The image's package manager: apt, dnf, yum, zypper, apk or pacman.",
	"os.arch":            "The architecture of the image's system.",
	"hostname":           "The image's host name (/etc/hostname).",
}

// recipeExample is the EXAMPLE section; a test parses it with the step
// registry, so it stays a valid recipe.
const recipeExample = `name: web golden image
vars:
  admin: ops
steps:
  - name: set the hostname
    hostname: web01
  - install: [nginx]
    when: os.family == "debian"
  - write: {path: /etc/motd, content: "Built by imgbake for {{ .vars.admin }}\n", mode: "0644"}
  - run: nginx -t
    changed_when: false
  - service: {name: nginx, enabled: true}
  - machine_id_reset: true`

// RecipeExample is the recipe shown in imgbake-recipe(5).
func RecipeExample() string { return recipeExample }

// Recipe renders imgbake-recipe(5): the recipe format, with the step kinds
// from the registry and the common fields and facts of the recipe language.
func Recipe(h Header) ([]byte, error) {
	fields, err := documented("step field", recipes.StepFields(), fieldText)
	if err != nil {
		return nil, err
	}
	facts, err := documented("fact", recipes.FactNames(), factText)
	if err != nil {
		return nil, err
	}
	commandKinds := strings.Join(steps.CommandKinds(), ", ")
	p := newPage("imgbake-recipe", 5, "File Formats", h)
	p.heading(1, "NAME")
	p.printf("imgbake-recipe - the YAML recipe that imgbake applies to a disk image\n\n")
	p.heading(1, "SYNOPSIS")
	p.printf("```\nname: NAME\nvars:\n  NAME: VALUE\nsteps:\n  - KIND: VALUE\n    FIELD: VALUE\n```\n\n")
	p.heading(1, "DESCRIPTION")
	p.text("A recipe lists the steps that customize a disk image, in order. `imgbake run -a disk.qcow2 recipe.yaml` " +
		"applies it in one appliance boot; `imgbake check recipe.yaml` validates it without booting anything.")
	p.text("Each step has exactly one operation, whose key is its kind (see STEP KINDS), plus optional common fields. " +
		"Host paths are relative to the recipe file; paths inside the image are absolute. Unknown keys, two " +
		"operations in one step, relative image paths, bad durations, expressions and templates, and missing host " +
		"files are all rejected before anything is touched, each as FILE:LINE:COL: message, all of them at once.")
	p.heading(1, "COMMON FIELDS")
	for _, f := range fields {
		text := fieldText[f]
		if strings.Contains(text, "%s") {
			text = fmt.Sprintf(text, commandKinds)
		}
		p.term("**"+escape(f)+"**", text)
	}
	p.heading(1, "FACTS")
	p.text("Facts are gathered from the image once per run, before the first step. Expressions name them as below; " +
		"templates as .os.id, .os.family, ..., .hostname.")
	for _, f := range facts {
		p.term("**"+escape(f)+"**", factText[f])
	}
	p.heading(1, "VARIABLES")
	p.text("Variables come from the recipe's vars: mapping, from --vars-file FILE (a YAML mapping) and from " +
		"--var NAME=VALUE on the command line, which wins. Expressions name them vars.NAME, templates .vars.NAME.")
	p.heading(1, "TEMPLATES")
	p.text("Every string field is a Go text/template that sees .vars and the facts; template steps render a host " +
		"file the same way. A missing key is an error naming the step and the key.")
	p.heading(1, "EXPRESSIONS")
	p.text("when and changed_when take expressions: == and != , in and not in (membership of a list, or a substring " +
		"of a string), and, or, not, parentheses, lists [a, b], strings in quotes, and < <= > >= which compare " +
		"versions (\"12\" > \"9\", \"2.10\" > \"2.9\"). Example:\n\n   os.family == \"rhel\" and os.version_id >= 9")
	p.heading(1, "STEP KINDS")
	p.text("Idempotent kinds report ok on a second run; command kinds may use creates and changed_when; kinds that " +
		"need the network get the appliance a user-mode network for the run (unless --no-network).")
	for _, k := range steps.All() {
		ex, comment := k.ExampleParts()
		text := "`" + ex + "`"
		if comment != "" {
			text += " — " + comment
		}
		p.term("**"+escape(k.Name)+"** — "+escape(strings.Join(k.Properties(), ", ")), text)
	}
	p.heading(1, "STEP RESULTS")
	p.text("Every step reports ok (nothing needed changing), changed, skipped (its when was false, or creates " +
		"exists), cached (taken from the step-layer cache of run --cache) or failed. The first failing step stops " +
		"the run unless it has ignore_errors; the image changes only if every step succeeded (unless --in-place).")
	p.heading(1, "EXAMPLE")
	p.printf("```\n%s\n```\n\n", recipeExample)
	p.heading(1, "SEE ALSO")
	p.printf("**imgbake**(1)\n")
	return p.roff(), nil
}

// documented returns names, checking that text explains each of them and
// nothing else.
func documented(what string, names []string, text map[string]string) ([]string, error) {
	for _, n := range names {
		if text[n] == "" {
			return nil, fmt.Errorf("imgbake-recipe(5): the %s %q is not documented", what, n)
		}
	}
	if len(text) != len(names) {
		return nil, fmt.Errorf("imgbake-recipe(5): %d %ss documented, but the recipe language has %d (%s)",
			len(text), what, len(names), strings.Join(names, ", "))
	}
	return names, nil
}
