package fsops

import (
	"strings"
	"testing"
)

func TestSed(t *testing.T) {
	for _, c := range []struct {
		exprs   []string
		in, out string
		n       int
	}{
		{[]string{"s/a/b/"}, "aaa\naa\n", "baa\nba\n", 2},
		{[]string{"s/a/b/g"}, "aaa\naa\n", "bbb\nbb\n", 5},
		{[]string{"s/A/b/gi"}, "aAa", "bbb", 3},
		{[]string{`s/(\w+)=(\w+)/\2=\1/`}, "key=value\n", "value=key\n", 1},
		{[]string{`s/x/[&]/g`}, "axbx", "a[x]b[x]", 2},
		{[]string{`s/x/\&\\/`}, "x", `&\`, 1},
		{[]string{`s|/usr/bin|/opt/bin|`}, "PATH=/usr/bin\n", "PATH=/opt/bin\n", 1},
		{[]string{`s/\/a/\/b/`}, "/a", "/b", 1},
		{[]string{`s/^#(PermitRootLogin).*/\1 no/`, `s/no$/yes/`}, "#PermitRootLogin prohibit-password\r\nPort 22\r\n", "PermitRootLogin yes\r\nPort 22\r\n", 2},
		{[]string{"s/nomatch/x/"}, "a\nb", "a\nb", 0},
		{[]string{"s/$/;/"}, "a\nb", "a;\nb;", 2},
		{[]string{`s/a/1\n2/`}, "a", "1\n2", 1},
		{[]string{"s/a/$1/"}, "a", "$1", 1}, // no Go template expansion
	} {
		var exprs []*SedExpr
		for _, e := range c.exprs {
			x, err := ParseSed(e)
			if err != nil {
				t.Fatalf("%q: %v", e, err)
			}
			exprs = append(exprs, x)
		}
		got, n := ApplySed([]byte(c.in), exprs)
		if string(got) != c.out || n != c.n {
			t.Errorf("%q on %q: got %q (%d), want %q (%d)", c.exprs, c.in, got, n, c.out, c.n)
		}
	}
}

func TestParseSedErrors(t *testing.T) {
	for e, want := range map[string]string{
		"":           "only s commands",
		"y/a/b/":     "only s commands",
		"s/a/b":      "closing delimiter",
		"s/a":        "missing the replacement",
		"s//b/":      "empty regular expression",
		"s/a/b/x":    "unknown flag",
		"s/(/b/":     "missing closing )",
		`s/a/\1/`:    "group",
		`s/a/b\`:     "closing delimiter",
		"sxaxbx":     "delimiter",
		"s a b ":     "delimiter",
		`s\a\b\`:     "delimiter",
		"s/(a)/\\2/": "group",
	} {
		_, err := ParseSed(e)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseSed(%q) = %v, want an error containing %q", e, err, want)
		}
	}
}
