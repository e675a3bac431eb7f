package recipes

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"text/template"

	"go.yaml.in/yaml/v3"
)

// Facts are what a run learns about the image once, before the first step,
// for `when` expressions and templates.
type Facts struct {
	OSID           string
	VersionID      string
	Family         string // debian, rhel, suse, alpine, arch, ... (the agent's, see appliance/distro)
	PackageManager string
	Arch           string
	Hostname       string
}

// factNames are the facts' names in expressions; templates see them as
// .os.id and so on.
var factNames = []string{"os.id", "os.version_id", "os.family", "os.package_manager", "os.arch", "hostname"}

// FactNames are the facts a recipe may use, as expressions name them, for
// the documentation (imgbake-recipe(5)).
func FactNames() []string { return slices.Clone(factNames) }

// resultNames are what changed_when may use besides facts and vars.
var resultNames = []string{"rc", "stdout", "stderr"}

// Data is what expressions and templates see for facts f.
func (r *Recipe) Data(f Facts) map[string]any {
	return map[string]any{
		"os": map[string]any{"id": f.OSID, "version_id": f.VersionID, "family": f.Family,
			"package_manager": f.PackageManager, "arch": f.Arch},
		"hostname": f.Hostname,
		"vars":     r.Vars,
	}
}

// Option adjusts how a recipe is loaded.
type Option func(*loadConfig)

type loadConfig struct {
	vars map[string]any
}

// WithVars sets variables that override the recipe's own `vars:` (the
// command line's --var and --vars-file).
func WithVars(vars map[string]any) Option {
	return func(c *loadConfig) {
		for k, v := range vars {
			c.vars[k] = v
		}
	}
}

// ReadVarsFile reads a YAML mapping of variables.
func ReadVarsFile(path string) (map[string]any, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("vars file: %w", err)
	}
	var raw map[string]any
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("vars file %s: %w", path, err)
	}
	return raw, nil
}

// vars decodes the recipe's vars mapping: scalars and lists of scalars.
func (d *Decoder) vars(n *yaml.Node) map[string]any {
	out := map[string]any{}
	d.Mapping("vars", "a mapping of names to values", n, func(key string, keyNode, value *yaml.Node) {
		if !validVarName(key) {
			d.Errorf(keyNode, "vars: %s is not a valid name (letters, digits and _, not starting with a digit)", Quote(key))
			return
		}
		v := ResolveAlias(value)
		switch v.Kind {
		case yaml.ScalarNode:
			out[key] = v.Value
		case yaml.SequenceNode:
			var items []any
			for _, it := range v.Content {
				if it = ResolveAlias(it); it.Kind != yaml.ScalarNode {
					d.TypeError("vars."+key, "a scalar", it)
					continue
				}
				items = append(items, it.Value)
			}
			out[key] = items
		default:
			d.TypeError("vars."+key, "a string, number, boolean or list", value)
		}
	})
	return out
}

func validVarName(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for _, c := range s {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// expandVars renders templates inside string vars (a var may use other
// vars), a few passes until nothing changes.
func expandVars(vars map[string]any) error {
	for pass := 0; pass < 5; pass++ {
		changed := false
		keys := make([]string, 0, len(vars))
		for k := range vars {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			s, ok := vars[k].(string)
			if !ok || !strings.Contains(s, "{{") {
				continue
			}
			out, err := renderString("vars."+k, s, map[string]any{"vars": vars})
			if err != nil {
				return fmt.Errorf("vars.%s: %w", k, err)
			}
			if out != s {
				vars[k] = out
				changed = true
			}
		}
		if !changed {
			return nil
		}
	}
	return errors.New("vars refer to each other in a loop")
}

// names reports whether an expression may use name.
func (d *Decoder) names(withResult bool) func(string) bool {
	return func(n string) bool {
		for _, f := range factNames {
			if n == f {
				return true
			}
		}
		if v, ok := strings.CutPrefix(n, "vars."); ok {
			_, known := d.varsSeen[v]
			return known
		}
		if withResult {
			for _, r := range resultNames {
				if n == r {
					return true
				}
			}
		}
		return false
	}
}

// expr parses an expression field (when, changed_when), reporting errors
// at the offending character where the YAML node allows it.
func (d *Decoder) expr(ctx string, n *yaml.Node, withResult bool) *Expr {
	v := ResolveAlias(n)
	if v.Kind != yaml.ScalarNode || IsNull(v) {
		d.TypeError(ctx, "an expression", n)
		return nil
	}
	e, err := ParseExpr(v.Value, d.names(withResult))
	if err != nil {
		var ee *ExprError
		pos := d.pos(v)
		if errors.As(err, &ee) && !strings.Contains(v.Value, "\n") {
			pos.Col += ee.Offset
			if v.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
				pos.Col++
			}
		}
		d.errs = append(d.errs, &Error{Pos: pos, Msg: fmt.Sprintf("%s%v in %s", Prefix(ctx), err, Quote(v.Value))})
		return nil
	}
	return e
}

// hasTemplate reports whether any scalar under n uses template syntax.
func hasTemplate(n *yaml.Node) bool {
	n = ResolveAlias(n)
	if n.Kind == yaml.ScalarNode {
		return strings.Contains(n.Value, "{{")
	}
	for _, c := range n.Content {
		if hasTemplate(c) {
			return true
		}
	}
	return false
}

// renderNode returns a deep copy of n with every templated scalar rendered
// with data; errors name the scalar's position.
func renderNode(n *yaml.Node, data map[string]any, fail func(n *yaml.Node, err error)) *yaml.Node {
	n = ResolveAlias(n)
	c := *n
	if n.Kind == yaml.ScalarNode {
		if strings.Contains(n.Value, "{{") {
			out, err := renderString("", n.Value, data)
			if err != nil {
				fail(n, err)
			} else {
				c.Value = out
				if c.Tag == "" || c.Tag == "!!str" || c.ShortTag() == "!!str" {
					c.Tag = "!!str"
				}
			}
		}
		return &c
	}
	c.Content = make([]*yaml.Node, len(n.Content))
	for i, ch := range n.Content {
		c.Content[i] = renderNode(ch, data, fail)
	}
	return &c
}

func renderString(name, text string, data map[string]any) (string, error) {
	t, err := template.New(name).Option("missingkey=error").Parse(text)
	if err != nil {
		return "", TemplateError(err)
	}
	var b strings.Builder
	if err := t.Execute(&b, data); err != nil {
		return "", TemplateError(err)
	}
	return b.String(), nil
}

// templateError shortens text/template's messages, which repeat the
// template name and position we already report.
func TemplateError(err error) error {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "template: ")
	if i := strings.Index(msg, ": "); i >= 0 && strings.HasPrefix(msg, ":") {
		msg = msg[i+2:]
	}
	// "executing \"\" at <.vars.x>: map has no entry for key \"x\"" → "no value for .vars.x"
	if i := strings.Index(msg, "at <"); i >= 0 && strings.Contains(msg, "map has no entry for key") {
		if j := strings.Index(msg[i:], ">"); j > 0 {
			return fmt.Errorf("template: no value for %s", msg[i+4:i+j])
		}
	}
	return fmt.Errorf("template: %s", msg)
}

// Resolve returns the step's operation with templates rendered for facts
// f. Steps without templates return their op as loaded.
func (r *Recipe) Resolve(st Step, f Facts) (Op, error) {
	rs, err := r.ResolveStep(st, f)
	return rs.Op, err
}

// ResolveStep is Resolve for the whole step: its Op and HostPaths are
// those of the rendered operation.
func (r *Recipe) ResolveStep(st Step, f Facts) (Step, error) {
	if st.opNode == nil {
		return st, nil
	}
	data := r.Data(f)
	d := &Decoder{file: r.File, baseDir: r.Dir, varsSeen: r.Vars}
	var errs ErrorList
	rendered := renderNode(st.opNode, data, func(n *yaml.Node, err error) {
		errs = append(errs, &Error{Pos: d.pos(n), Msg: err.Error()})
	})
	if len(errs) > 0 {
		return st, errs
	}
	op := syntaxes[st.Op.Kind()].Decode(d, rendered)
	if len(d.errs) > 0 {
		return st, d.errs
	}
	st.Op, st.HostPaths = op, d.hostPaths
	return st, nil
}
