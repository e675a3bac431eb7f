package recipes

import (
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"strconv"
	"strings"
	"text/template"

	"go.yaml.in/yaml/v3"
)

// Template renders a host file with Go text/template (vars and facts) and
// writes the result into the image.
type Template struct {
	Src   string // absolute host path
	Dest  string
	Mode  *fs.FileMode
	Owner string
	tmpl  *template.Template
}

func init() { register("template", decodeTemplate) }

func (*Template) Kind() string       { return "template" }
func (t *Template) Describe() string { return "template: " + t.Dest }

// Render executes the template with data (see Recipe.Data).
func (t *Template) Render(data map[string]any) (string, error) {
	var b strings.Builder
	if err := t.tmpl.Execute(&b, data); err != nil {
		return "", fmt.Errorf("%s: %w", t.Src, templateError(err))
	}
	return b.String(), nil
}

func decodeTemplate(d *decoder, n *yaml.Node) Op {
	var t Template
	var srcNode *yaml.Node
	d.fields("template", n,
		field{key: "src", required: true, decode: func(v *yaml.Node) { t.Src, srcNode = d.existingHostPath("template.src", v), v }},
		field{key: "dest", required: true, decode: func(v *yaml.Node) { t.Dest = d.imagePath("template.dest", v) }},
		field{key: "mode", decode: func(v *yaml.Node) { t.Mode = d.mode("template.mode", v) }},
		field{key: "owner", decode: func(v *yaml.Node) { t.Owner = d.owner("template.owner", v) }},
	)
	if t.Src == "" || srcNode == nil {
		return &t
	}
	if _, err := os.Stat(t.Src); err != nil {
		return &t // already reported by existingHostPath
	}
	text, err := os.ReadFile(t.Src)
	if err != nil {
		d.errorf(srcNode, "template.src: %v", err)
		return &t
	}
	tmpl, err := template.New(t.Src).Option("missingkey=error").Parse(string(text))
	if err != nil {
		d.templateFileError(srcNode, t.Src, err)
		return &t
	}
	t.tmpl = tmpl
	// Check keys now, with empty facts, so a typo fails before booting.
	if d.loadData != nil {
		if err := tmpl.Execute(discard{}, d.loadData); err != nil {
			d.templateFileError(srcNode, t.Src, err)
		}
	}
	return &t
}

var templateLine = regexp.MustCompile(`^template: [^:]*:(\d+)(?::(\d+))?: `)

// templateFileError reports a problem inside a template file at its own
// file:line, falling back to the recipe's src field.
func (d *decoder) templateFileError(srcNode *yaml.Node, file string, err error) {
	msg := err.Error()
	if m := templateLine.FindStringSubmatch(strings.Replace(msg, file, "", 1)); m != nil {
		line, _ := strconv.Atoi(m[1])
		col := 1
		if m[2] != "" {
			col, _ = strconv.Atoi(m[2])
		}
		msg := strings.ReplaceAll(templateError(err).Error(), file+":", "line ")
		msg = strings.Replace(msg, "template: line "+m[0][len("template: :"):], "template: ", 1)
		d.errs = append(d.errs, &Error{Pos: Position{File: file, Line: line, Col: col}, Msg: msg})
		return
	}
	d.errorf(srcNode, "template.src: %v", templateError(err))
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
