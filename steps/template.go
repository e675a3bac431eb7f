package steps

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"strconv"
	"strings"
	"text/template"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/recipes"
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

func init() {
	register(Kind{Name: "template", Idempotent: true, Decode: decodeTemplate,
		Example: `template: {src: templates/site.conf.tmpl, dest: /etc/site.conf, mode: "0644"}  # Go text/template with .vars and .os facts`,
		Apply: func(ctx context.Context, env Env, st recipes.Step) (fsops.Result, error) {
			op := st.Op.(*Template)
			text, err := op.Render(env.Data)
			if err != nil {
				return fsops.Result{}, err
			}
			return fsops.WriteFile(ctx, env.Session, op.Dest, strings.NewReader(text), fsops.WriteOptions{Mode: op.Mode, Owner: op.Owner})
		},
	})
}

func (*Template) Kind() string       { return "template" }
func (t *Template) Describe() string { return "template: " + t.Dest }

// Render executes the template with data (see Recipe.Data).
func (t *Template) Render(data map[string]any) (string, error) {
	var b strings.Builder
	if err := t.tmpl.Execute(&b, data); err != nil {
		return "", fmt.Errorf("%s: %w", t.Src, recipes.TemplateError(err))
	}
	return b.String(), nil
}

func decodeTemplate(d *recipes.Decoder, n *yaml.Node) recipes.Op {
	var t Template
	var srcNode *yaml.Node
	d.Fields("template", n,
		recipes.Field{Key: "src", Required: true, Decode: func(v *yaml.Node) { t.Src, srcNode = d.ExistingHostPath("template.src", v), v }},
		recipes.Field{Key: "dest", Required: true, Decode: func(v *yaml.Node) { t.Dest = d.ImagePath("template.dest", v) }},
		recipes.Field{Key: "mode", Decode: func(v *yaml.Node) { t.Mode = d.Mode("template.mode", v) }},
		recipes.Field{Key: "owner", Decode: func(v *yaml.Node) { t.Owner = d.Owner("template.owner", v) }},
	)
	if t.Src == "" || srcNode == nil {
		return &t
	}
	if _, err := os.Stat(t.Src); err != nil {
		return &t // already reported by existingHostPath
	}
	text, err := os.ReadFile(t.Src)
	if err != nil {
		d.Errorf(srcNode, "template.src: %v", err)
		return &t
	}
	tmpl, err := template.New(t.Src).Option("missingkey=error").Parse(string(text))
	if err != nil {
		templateFileError(d, srcNode, t.Src, err)
		return &t
	}
	t.tmpl = tmpl
	// Check keys now, with empty facts, so a typo fails before booting.
	if d.LoadData() != nil {
		if err := tmpl.Execute(discard{}, d.LoadData()); err != nil {
			templateFileError(d, srcNode, t.Src, err)
		}
	}
	return &t
}

var templateLine = regexp.MustCompile(`^template: [^:]*:(\d+)(?::(\d+))?: `)

// templateFileError reports a problem inside a template file at its own
// file:line, falling back to the recipe's src field.
func templateFileError(d *recipes.Decoder, srcNode *yaml.Node, file string, err error) {
	msg := err.Error()
	if m := templateLine.FindStringSubmatch(strings.Replace(msg, file, "", 1)); m != nil {
		line, _ := strconv.Atoi(m[1])
		col := 1
		if m[2] != "" {
			col, _ = strconv.Atoi(m[2])
		}
		msg := strings.ReplaceAll(recipes.TemplateError(err).Error(), file+":", "line ")
		msg = strings.Replace(msg, "template: line "+m[0][len("template: :"):], "template: ", 1)
		d.ErrorAt(recipes.Position{File: file, Line: line, Col: col}, "%s", msg)
		return
	}
	d.Errorf(srcNode, "template.src: %v", recipes.TemplateError(err))
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
