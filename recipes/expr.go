package recipes

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"

	"github.com/imgbake/imgbake/internal/vercmp"
)

// Expressions for `when` and `changed_when`. The language is small on
// purpose:
//
//	expr    = or
//	or      = and { "or" and }
//	and     = not { "and" not }
//	not     = "not" not | compare
//	compare = value [ ("==" | "!=" | "<" | "<=" | ">" | ">=" | "in" | "not in") value ]
//	value   = STRING | NUMBER | "true" | "false" | NAME { "." NAME } | "[" [ value { "," value } ] "]" | "(" expr ")"
//
// Strings are in single or double quotes. Names are facts (os.id,
// os.family, os.version_id, os.package_manager, os.arch, hostname), vars
// (vars.NAME) and, in changed_when, the command's rc, stdout and stderr.
// < <= > >= compare versions: "12" > "9", "2.10" > "2.9", "12.1" >= "12".
// "in" tests membership in a list, or a substring of a string.

// Expr is a parsed expression.
type Expr struct {
	src  string
	root node
}

// String returns the expression as written.
func (e *Expr) String() string { return e.src }

// ExprError is a problem in an expression, at a 0-based byte offset.
type ExprError struct {
	Offset int
	Msg    string
}

func (e *ExprError) Error() string { return e.Msg }

type node interface {
	eval(env map[string]any) (any, error)
}

type (
	literal struct{ v any }
	name    struct {
		path   []string
		offset int
	}
	list   struct{ items []node }
	unary  struct{ x node }
	binary struct {
		op   string
		l, r node
	}
)

// ParseExpr parses src. names, if not nil, are the names the expression
// may use (e.g. "os.id", "vars.admin"); anything else is an error.
func ParseExpr(src string, names func(string) bool) (*Expr, error) {
	p := &exprParser{src: src, names: names}
	if err := p.lex(); err != nil {
		return nil, err
	}
	if len(p.toks) == 0 {
		return nil, &ExprError{0, "empty expression"}
	}
	root, err := p.or()
	if err != nil {
		return nil, err
	}
	if p.pos < len(p.toks) {
		t := p.toks[p.pos]
		return nil, &ExprError{t.off, fmt.Sprintf("unexpected %q", t.text)}
	}
	return &Expr{src: src, root: root}, nil
}

// Eval evaluates the expression to a boolean.
func (e *Expr) Eval(env map[string]any) (bool, error) {
	v, err := e.root.eval(env)
	if err != nil {
		return false, err
	}
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("%q is %s, not true or false", e.src, describe(v))
	}
	return b, nil
}

type token struct {
	kind string // "str", "num", "name", "op"
	text string
	off  int
}

type exprParser struct {
	src   string
	toks  []token
	pos   int
	names func(string) bool
}

func (p *exprParser) lex() error {
	s := p.src
	for i := 0; i < len(s); {
		c := rune(s[i])
		switch {
		case unicode.IsSpace(c):
			i++
		case c == '"' || c == '\'':
			j := i + 1
			var b strings.Builder
			for ; j < len(s) && rune(s[j]) != c; j++ {
				if s[j] == '\\' && j+1 < len(s) {
					j++
				}
				b.WriteByte(s[j])
			}
			if j >= len(s) {
				return &ExprError{i, "unterminated string"}
			}
			p.toks = append(p.toks, token{"str", b.String(), i})
			i = j + 1
		case c >= '0' && c <= '9':
			j := i
			for j < len(s) && (s[j] >= '0' && s[j] <= '9' || s[j] == '.') {
				j++
			}
			p.toks = append(p.toks, token{"num", s[i:j], i})
			i = j
		case c == '_' || unicode.IsLetter(c):
			j := i
			for j < len(s) && (s[j] == '_' || s[j] == '.' || s[j] == '-' || s[j] >= '0' && s[j] <= '9' || unicode.IsLetter(rune(s[j]))) {
				j++
			}
			p.toks = append(p.toks, token{"name", strings.TrimRight(s[i:j], "."), i})
			i = j
		default:
			two := ""
			if i+1 < len(s) {
				two = s[i : i+2]
			}
			switch {
			case two == "==" || two == "!=" || two == "<=" || two == ">=":
				p.toks = append(p.toks, token{"op", two, i})
				i += 2
			case strings.ContainsRune("<>()[],", c):
				p.toks = append(p.toks, token{"op", string(c), i})
				i++
			case c == '=':
				return &ExprError{i, `"=" is not an operator; compare with "=="`}
			case c == '&' || c == '|' || c == '!':
				return &ExprError{i, fmt.Sprintf("%q is not an operator; use and, or, not", string(c))}
			default:
				return &ExprError{i, fmt.Sprintf("unexpected character %q", string(c))}
			}
		}
	}
	return nil
}

func (p *exprParser) peek() (token, bool) {
	if p.pos < len(p.toks) {
		return p.toks[p.pos], true
	}
	return token{}, false
}

func (p *exprParser) isWord(w string) bool {
	t, ok := p.peek()
	return ok && t.kind == "name" && t.text == w
}

func (p *exprParser) isOp(o string) bool {
	t, ok := p.peek()
	return ok && t.kind == "op" && t.text == o
}

func (p *exprParser) end() int {
	if p.pos < len(p.toks) {
		return p.toks[p.pos].off
	}
	return len(p.src)
}

func (p *exprParser) or() (node, error) {
	l, err := p.and()
	if err != nil {
		return nil, err
	}
	for p.isWord("or") {
		p.pos++
		r, err := p.and()
		if err != nil {
			return nil, err
		}
		l = &binary{"or", l, r}
	}
	return l, nil
}

func (p *exprParser) and() (node, error) {
	l, err := p.not()
	if err != nil {
		return nil, err
	}
	for p.isWord("and") {
		p.pos++
		r, err := p.not()
		if err != nil {
			return nil, err
		}
		l = &binary{"and", l, r}
	}
	return l, nil
}

func (p *exprParser) not() (node, error) {
	if p.isWord("not") {
		p.pos++
		x, err := p.not()
		if err != nil {
			return nil, err
		}
		return &unary{x}, nil
	}
	return p.compare()
}

func (p *exprParser) compare() (node, error) {
	l, err := p.value()
	if err != nil {
		return nil, err
	}
	t, ok := p.peek()
	if !ok {
		return l, nil
	}
	op := ""
	switch {
	case t.kind == "op" && (t.text == "==" || t.text == "!=" || t.text == "<" || t.text == "<=" || t.text == ">" || t.text == ">="):
		op = t.text
		p.pos++
	case p.isWord("in"):
		op = "in"
		p.pos++
	case p.isWord("not") && p.pos+1 < len(p.toks) && p.toks[p.pos+1].kind == "name" && p.toks[p.pos+1].text == "in":
		op = "not in"
		p.pos += 2
	default:
		return l, nil
	}
	r, err := p.value()
	if err != nil {
		return nil, err
	}
	return &binary{op, l, r}, nil
}

func (p *exprParser) value() (node, error) {
	t, ok := p.peek()
	if !ok {
		return nil, &ExprError{len(p.src), "expression ends too early"}
	}
	p.pos++
	switch t.kind {
	case "str":
		return &literal{t.text}, nil
	case "num":
		// Kept as written: 22.10 is a version, not the float 22.1.
		return &literal{t.text}, nil
	case "name":
		switch t.text {
		case "true":
			return &literal{true}, nil
		case "false":
			return &literal{false}, nil
		case "and", "or", "not", "in":
			return nil, &ExprError{t.off, fmt.Sprintf("expected a value, found %q", t.text)}
		}
		if p.names != nil && !p.names(t.text) {
			return nil, &ExprError{t.off, fmt.Sprintf("unknown name %q", t.text)}
		}
		return &name{strings.Split(t.text, "."), t.off}, nil
	}
	switch t.text {
	case "(":
		x, err := p.or()
		if err != nil {
			return nil, err
		}
		if !p.isOp(")") {
			return nil, &ExprError{p.end(), `missing ")"`}
		}
		p.pos++
		return x, nil
	case "[":
		l := &list{}
		for !p.isOp("]") {
			if len(l.items) > 0 {
				if !p.isOp(",") {
					return nil, &ExprError{p.end(), `expected "," or "]" in list`}
				}
				p.pos++
			}
			x, err := p.value()
			if err != nil {
				return nil, err
			}
			l.items = append(l.items, x)
		}
		p.pos++
		return l, nil
	}
	return nil, &ExprError{t.off, fmt.Sprintf("expected a value, found %q", t.text)}
}

func (l *literal) eval(map[string]any) (any, error) { return l.v, nil }

func (n *name) eval(env map[string]any) (any, error) {
	var cur any = env
	for i, part := range n.path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s is not a mapping", strings.Join(n.path[:i], "."))
		}
		if cur, ok = m[part]; !ok {
			return nil, fmt.Errorf("%s is not defined", strings.Join(n.path[:i+1], "."))
		}
	}
	return cur, nil
}

func (l *list) eval(env map[string]any) (any, error) {
	out := make([]any, len(l.items))
	for i, x := range l.items {
		v, err := x.eval(env)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

func (u *unary) eval(env map[string]any) (any, error) {
	v, err := u.x.eval(env)
	if err != nil {
		return nil, err
	}
	b, ok := v.(bool)
	if !ok {
		return nil, fmt.Errorf("not: %s is not true or false", describe(v))
	}
	return !b, nil
}

func (b *binary) eval(env map[string]any) (any, error) {
	l, err := b.l.eval(env)
	if err != nil {
		return nil, err
	}
	if b.op == "and" || b.op == "or" {
		lb, ok := l.(bool)
		if !ok {
			return nil, fmt.Errorf("%s: %s is not true or false", b.op, describe(l))
		}
		if b.op == "and" && !lb || b.op == "or" && lb {
			return lb, nil // short-circuit
		}
	}
	r, err := b.r.eval(env)
	if err != nil {
		return nil, err
	}
	switch b.op {
	case "and", "or":
		rb, ok := r.(bool)
		if !ok {
			return nil, fmt.Errorf("%s: %s is not true or false", b.op, describe(r))
		}
		return rb, nil
	case "==":
		return equal(l, r), nil
	case "!=":
		return !equal(l, r), nil
	case "in", "not in":
		in, err := member(l, r)
		if err != nil {
			return nil, err
		}
		return in == (b.op == "in"), nil
	}
	c := CompareVersions(toString(l), toString(r))
	switch b.op {
	case "<":
		return c < 0, nil
	case "<=":
		return c <= 0, nil
	case ">":
		return c > 0, nil
	}
	return c >= 0, nil
}

func equal(l, r any) bool { return toString(l) == toString(r) }

func member(l, r any) (bool, error) {
	switch rv := r.(type) {
	case []any:
		for _, x := range rv {
			if equal(l, x) {
				return true, nil
			}
		}
		return false, nil
	case string:
		return strings.Contains(rv, toString(l)), nil
	}
	return false, fmt.Errorf("in: %s is not a list or a string", describe(r))
}

func toString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case int:
		return strconv.Itoa(x)
	case bool:
		return strconv.FormatBool(x)
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

func describe(v any) string {
	switch x := v.(type) {
	case string:
		return strconv.Quote(x)
	case []any:
		return "a list"
	}
	return toString(v)
}

// CompareVersions is how `when` expressions order versions (<, <=, >,
// >=): vercmp.Compare, numerically where both parts are numbers: "12" >
// "9", "2.10" > "2.9", "12" < "12.1".
func CompareVersions(a, b string) int { return vercmp.Compare(a, b) }
