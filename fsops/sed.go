package fsops

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"strings"
)

// SedExpr is one `s/regex/replacement/flags` expression, as given to
// `imgbake edit -e`. The regex is Go (RE2) syntax, like sed -E; the
// replacement understands sed's & (the match), \1..\9 (groups), \& \\ and
// \n; flags are g (every match on the line, not just the first) and i or I
// (ignore case). Any character may delimit, as in sed (s|a/b|c|).
type SedExpr struct {
	Source string
	re     *regexp.Regexp
	repl   []sedPart
	global bool
}

// sedPart is a literal or a group reference of a replacement.
type sedPart struct {
	lit   string
	group int // -1: literal
}

// ParseSed parses one s expression.
func ParseSed(expr string) (*SedExpr, error) {
	bad := func(msg string) error { return fmt.Errorf("-e %q: %s (expected s/REGEX/REPLACEMENT/[gi])", expr, msg) }
	if len(expr) < 2 || expr[0] != 's' {
		return nil, bad("only s commands are supported")
	}
	delim := expr[1]
	if delim == '\\' || delim == '\n' || delim == ' ' || delim >= 0x80 || isAlnum(delim) {
		return nil, bad(fmt.Sprintf("%q cannot be the delimiter", delim))
	}
	parts, rest, err := splitSed(expr[2:], delim)
	if err != nil {
		return nil, bad(err.Error())
	}
	if parts[0] == "" {
		return nil, bad("empty regular expression")
	}
	e := &SedExpr{Source: expr}
	flags := ""
	for _, f := range rest {
		switch f {
		case 'g':
			e.global = true
		case 'i', 'I':
			flags = "(?i)"
		default:
			return nil, bad(fmt.Sprintf("unknown flag %q", f))
		}
	}
	if e.re, err = regexp.Compile(flags + parts[0]); err != nil {
		return nil, fmt.Errorf("-e %q: %w", expr, err)
	}
	if e.repl, err = parseReplacement(parts[1], e.re.NumSubexp()); err != nil {
		return nil, bad(err.Error())
	}
	return e, nil
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// splitSed cuts "regex<d>repl<d>flags" at unescaped delimiters; an escaped
// delimiter becomes the plain character.
func splitSed(s string, d byte) ([2]string, string, error) {
	var out [2]string
	var b strings.Builder
	field := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s) && s[i+1] == d:
			b.WriteByte(d)
			i++
		case c == '\\' && i+1 < len(s):
			b.WriteByte(c)
			b.WriteByte(s[i+1])
			i++
		case c == d:
			out[field] = b.String()
			b.Reset()
			field++
			if field == 2 {
				return out, s[i+1:], nil
			}
		default:
			b.WriteByte(c)
		}
	}
	if field == 1 {
		return out, "", errors.New("missing the closing delimiter")
	}
	return out, "", errors.New("missing the replacement")
}

func parseReplacement(s string, groups int) ([]sedPart, error) {
	var parts []sedPart
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			parts = append(parts, sedPart{lit: lit.String(), group: -1})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '&':
			flush()
			parts = append(parts, sedPart{group: 0})
		case c == '\\' && i+1 < len(s):
			i++
			n := s[i]
			switch {
			case n >= '1' && n <= '9':
				if int(n-'0') > groups {
					return nil, fmt.Errorf("\\%c refers to a group the regular expression does not have", n)
				}
				flush()
				parts = append(parts, sedPart{group: int(n - '0')})
			case n == 'n':
				lit.WriteByte('\n')
			case n == 't':
				lit.WriteByte('\t')
			default:
				lit.WriteByte(n) // \& \\ \/ ...
			}
		case c == '\\':
			return nil, errors.New("the replacement ends with a backslash")
		default:
			lit.WriteByte(c)
		}
	}
	flush()
	return parts, nil
}

// apply edits one line (without its newline) and counts replacements.
func (e *SedExpr) apply(line []byte) ([]byte, int) {
	n := 1
	if e.global {
		n = -1
	}
	matches := e.re.FindAllSubmatchIndex(line, n)
	if len(matches) == 0 {
		return line, 0
	}
	var out bytes.Buffer
	last := 0
	for _, m := range matches {
		out.Write(line[last:m[0]])
		for _, p := range e.repl {
			if p.group < 0 {
				out.WriteString(p.lit)
			} else if m[2*p.group] >= 0 {
				out.Write(line[m[2*p.group]:m[2*p.group+1]])
			}
		}
		last = m[1]
	}
	out.Write(line[last:])
	return out.Bytes(), len(matches)
}

// ApplySed runs the expressions over every line of data, in order, like
// `sed -E -e ... -e ...`, and counts the replacements. Line endings are kept.
func ApplySed(data []byte, exprs []*SedExpr) ([]byte, int) {
	var out bytes.Buffer
	total := 0
	for len(data) > 0 {
		line := data
		nl := ""
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data, nl = data[:i], data[i+1:], "\n"
		} else {
			data = nil
		}
		cr := bytes.HasSuffix(line, []byte("\r"))
		if cr {
			line = line[:len(line)-1]
		}
		for _, e := range exprs {
			var n int
			line, n = e.apply(line)
			total += n
		}
		out.Write(line)
		if cr {
			out.WriteByte('\r')
		}
		out.WriteString(nl)
	}
	return out.Bytes(), total
}

// EditInPlace reads the file at p (symlinks followed inside the image),
// passes its contents to edit and writes the result back atomically,
// keeping the file's mode and owner. When edit returns the contents
// unchanged the image is not written at all.
func EditInPlace(ctx context.Context, s Session, p string, edit func([]byte) ([]byte, error)) (Result, error) {
	real, exists, err := resolveFile(ctx, s, p)
	if err != nil {
		return Result{}, err
	}
	if !exists {
		return Result{}, fmt.Errorf("%s does not exist in the image", p)
	}
	st, err := s.Stat(ctx, real)
	if err != nil {
		return Result{}, err
	}
	if !st.Exists || !fs.FileMode(st.Mode).IsRegular() {
		return Result{}, fmt.Errorf("%s is not a regular file", p)
	}
	data, err := ReadFile(ctx, s, real, maxEditSize)
	if err != nil {
		return Result{}, err
	}
	out, err := edit(data)
	if err != nil {
		return Result{}, err
	}
	if bytes.Equal(out, data) {
		return Result{Detail: "no change"}, nil
	}
	res, err := WriteFile(ctx, s, real, bytes.NewReader(out), WriteOptions{})
	if err != nil {
		return res, err
	}
	if real != p {
		res.Detail = "edited " + real
	}
	return res, nil
}
