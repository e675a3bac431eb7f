package steps

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgbake/imgbake/recipes"
)

func TestExprEval(t *testing.T) {
	env := map[string]any{
		"os":       map[string]any{"id": "ubuntu", "family": "debian", "version_id": "22.04", "package_manager": "apt", "arch": "x86_64"},
		"hostname": "web1",
		"vars":     map[string]any{"admin": "ops", "roles": []any{"web", "db"}, "n": "3"},
		"stdout":   "created 2 files\n",
		"rc":       0,
	}
	tests := []struct {
		expr string
		want bool
	}{
		{`os.family == "debian"`, true},
		{`os.family != 'debian'`, false},
		{`os.id in ["debian", "ubuntu"]`, true},
		{`os.id not in ["rocky", "almalinux"]`, true},
		{`os.version_id >= "22"`, true},
		{`os.version_id >= 22.10`, false},
		{`os.version_id < "22.10"`, true},
		{`os.version_id > 9`, true},
		{`"web" in vars.roles and vars.admin == "ops"`, true},
		{`not (os.family == "rhel" or hostname == "db1")`, true},
		{`not os.family == "rhel"`, true},
		{`"created" in stdout`, true},
		{`rc == 0`, true},
		{`vars.n == 3`, true},
		{`true`, true},
		{`false or false`, false},
		{`os.arch == "x86_64" and os.package_manager == "apt"`, true},
	}
	for _, tt := range tests {
		e, err := recipes.ParseExpr(tt.expr, nil)
		if err != nil {
			t.Errorf("ParseExpr(%q): %v", tt.expr, err)
			continue
		}
		got, err := e.Eval(env)
		if err != nil || got != tt.want {
			t.Errorf("%q = %v, %v; want %v", tt.expr, got, err, tt.want)
		}
	}
}

func TestExprErrors(t *testing.T) {
	tests := []struct {
		expr   string
		offset int
		msg    string
	}{
		{`os.id = "x"`, 6, `"=" is not an operator; compare with "=="`},
		{`os.id == "x`, 9, `unterminated string`},
		{`os.id ==`, 8, `expression ends too early`},
		{`(os.id == "x"`, 13, `missing ")"`},
		{`os.id && os.arch`, 6, `"&" is not an operator; use and, or, not`},
		{`os.idd == "x"`, 0, `unknown name "os.idd"`},
		{`os.id == "x" "y"`, 13, `unexpected "y"`},
		{``, 0, `empty expression`},
		{`[1, 2`, 5, `expected "," or "]" in list`},
	}
	known := func(n string) bool { return n == "os.id" || n == "os.arch" }
	for _, tt := range tests {
		_, err := recipes.ParseExpr(tt.expr, known)
		var ee *recipes.ExprError
		if !errors.As(err, &ee) || ee.Offset != tt.offset || ee.Msg != tt.msg {
			t.Errorf("ParseExpr(%q) = %v (%+v), want offset %d %q", tt.expr, err, ee, tt.offset, tt.msg)
		}
	}
}

func TestCompareVersions(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{{"12", "9", 1}, {"2.10", "2.9", 1}, {"12", "12.1", -1}, {"12.0", "12.0", 0}, {"8.6", "9", -1}, {"1.0~rc1", "1.0", 1}} {
		if got := recipes.CompareVersions(tt.a, tt.b); got != tt.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

// TestWhenPicksBranch: the same recipe selects different steps for
// debian, ubuntu, rocky and almalinux facts.
func TestWhenPicksBranch(t *testing.T) {
	src := `vars:
  web: nginx
steps:
  - run: apt-get install -y {{ .vars.web }}
    when: os.family == "debian"
  - run: dnf install -y {{ .vars.web }}
    when: os.family == "rhel" and os.version_id >= 9
  - run: yum install -y {{ .vars.web }}
    when: os.family == "rhel" and os.version_id < 9
  - run: echo ubuntu only
    when: os.id == "ubuntu"
`
	r, err := recipes.Parse("w.yaml", []byte(src), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		facts recipes.Facts
		want  []string
	}{
		{recipes.Facts{OSID: "debian", VersionID: "12", Family: "debian"}, []string{"apt-get install -y nginx"}},
		{recipes.Facts{OSID: "ubuntu", VersionID: "22.04", Family: "debian"}, []string{"apt-get install -y nginx", "echo ubuntu only"}},
		{recipes.Facts{OSID: "rocky", VersionID: "9.3", Family: "rhel"}, []string{"dnf install -y nginx"}},
		{recipes.Facts{OSID: "almalinux", VersionID: "8.9", Family: "rhel"}, []string{"yum install -y nginx"}},
	}
	for _, tt := range tests {
		var got []string
		for _, st := range r.Steps {
			ok, err := st.When.Eval(r.Data(tt.facts))
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				continue
			}
			op, err := r.Resolve(st, tt.facts)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, op.(*Run).Command)
		}
		if strings.Join(got, "|") != strings.Join(tt.want, "|") {
			t.Errorf("%s %s: steps %q, want %q", tt.facts.OSID, tt.facts.VersionID, got, tt.want)
		}
	}
}

func TestVarsAndTemplates(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "site.tmpl"), []byte("server {{ .hostname }} on {{ .os.id }} for {{ .vars.admin }}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	src := `name: web
vars:
  admin: ops
  motd: "Built by imgbake for {{ .vars.admin }}\n"
  port: 8080
steps:
  - write: {path: "/etc/motd", content: "{{ .vars.motd }}"}
  - write: {path: "/home/{{ .vars.admin }}/port", content: "{{ .vars.port }}", mode: "0600"}
  - template: {src: site.tmpl, dest: /etc/site.conf}
  - run: echo {{ .os.family }}
    changed_when: '"debian" in stdout'
    creates: /etc/done
`
	r, err := recipes.Parse("v.yaml", []byte(src), dir, recipes.WithVars(map[string]any{"admin": "root"}))
	if err != nil {
		t.Fatal(err)
	}
	if r.Vars["motd"] != "Built by imgbake for root\n" {
		t.Errorf("command-line var should win and vars expand: %q", r.Vars["motd"])
	}
	f := recipes.Facts{OSID: "debian", Family: "debian", Hostname: "h1"}
	op, err := r.Resolve(r.Steps[1], f)
	if err != nil {
		t.Fatal(err)
	}
	if w := op.(*Write); w.Path != "/home/root/port" || w.Content != "8080" || w.Mode == nil || *w.Mode != 0o600 {
		t.Errorf("templated write = %+v", w)
	}
	tm := r.Steps[2].Op.(*Template)
	out, err := tm.Render(r.Data(f))
	if err != nil || out != "server h1 on debian for root\n" {
		t.Errorf("template = %q, %v", out, err)
	}
	st := r.Steps[3]
	if st.Creates != "/etc/done" || st.ChangedWhen == nil {
		t.Errorf("run step = %+v", st)
	}
	op, _ = r.Resolve(st, f)
	if op.(*Run).Command != "echo debian" {
		t.Errorf("templated run = %q", op.(*Run).Command)
	}
}

// TestLanguageInvalid: every language problem with its exact position.
func TestLanguageInvalid(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("bad-syntax.tmpl", "line one\n{{ .vars.x \n")
	write("bad-key.tmpl", "ok\n\nhello {{ .vars.nope }}\n")
	tests := []struct {
		name, src string
		want      []string
	}{
		{"when with =", "steps:\n  - run: a\n    when: os.id = \"debian\"\n",
			[]string{`r.yaml:3:17: when: "=" is not an operator; compare with "==" in "os.id = \"debian\""`}},
		{"when unknown fact", "steps:\n  - run: a\n    when: os.flavor == \"x\"\n",
			[]string{`r.yaml:3:11: when: unknown name "os.flavor" in "os.flavor == \"x\""`}},
		{"when unknown var", "vars: {a: 1}\nsteps:\n  - run: a\n    when: vars.b == 1\n",
			[]string{`r.yaml:4:11: when: unknown name "vars.b" in "vars.b == 1"`}},
		{"when quoted", "steps:\n  - run: a\n    when: 'os.id == \"x'\n",
			[]string{`r.yaml:3:21: when: unterminated string in "os.id == \"x"`}},
		{"when not a scalar", "steps:\n  - run: a\n    when: [a]\n",
			[]string{`r.yaml:3:11: when: expected an expression, got a list`}},
		{"changed_when uses stdout only on commands", "steps:\n  - write: {path: /a, content: b}\n    changed_when: rc == 0\n",
			[]string{`r.yaml:3:5: changed_when applies only to run and script steps`}},
		{"creates on write", "steps:\n  - write: {path: /a, content: b}\n    creates: /a\n",
			[]string{`r.yaml:3:5: creates applies only to run and script steps`}},
		{"creates relative", "steps:\n  - run: a\n    creates: etc/x\n",
			[]string{`r.yaml:3:14: creates: "etc/x" is not absolute; paths in the image start with /`}},
		{"changed_when with unknown name", "steps:\n  - run: a\n    changed_when: output == \"\"\n",
			[]string{`r.yaml:3:19: changed_when: unknown name "output" in "output == \"\""`}},
		{"template missing var", "steps:\n  - write: {path: /a, content: \"{{ .vars.nope }}\"}\n",
			[]string{`r.yaml:2:32: write: template: no value for .vars.nope`}},
		{"template syntax", "steps:\n  - run: \"echo {{ .vars.x \"\n",
			[]string{`r.yaml:2:10: run: template: unclosed action`}},
		{"template makes path relative", "vars: {d: opt}\nsteps:\n  - mkdir: {path: \"{{ .vars.d }}/x\"}\n",
			[]string{`r.yaml:3:19: mkdir.path: "opt/x" is not absolute; paths in the image start with /`}},
		{"template file syntax", "steps:\n  - template: {src: bad-syntax.tmpl, dest: /a}\n",
			[]string{`$DIR/bad-syntax.tmpl:3:1: template: unclosed action started at line 2`}},
		{"template file missing key", "steps:\n  - template: {src: bad-key.tmpl, dest: /a}\n",
			[]string{`$DIR/bad-key.tmpl:3:14: template: no value for .vars.nope`}},
		{"template src missing", "steps:\n  - template: {src: nothere.tmpl, dest: /a}\n",
			[]string{`r.yaml:2:21: template.src: "nothere.tmpl" does not exist (looked for "$DIR/nothere.tmpl")`}},
		{"template dest relative", "steps:\n  - template: {src: bad-key.tmpl, dest: a}\n",
			[]string{`r.yaml:2:41: template.dest: "a" is not absolute; paths in the image start with /`, `$DIR/bad-key.tmpl:3:14: template: no value for .vars.nope`}},
		{"vars not a mapping", "vars: [a]\nsteps:\n  - run: a\n",
			[]string{`r.yaml:1:7: vars: expected a mapping of names to values, got a list`}},
		{"var bad name", "vars: {1a: x}\nsteps:\n  - run: a\n",
			[]string{`r.yaml:1:8: vars: "1a" is not a valid name (letters, digits and _, not starting with a digit)`}},
		{"var nested mapping", "vars:\n  a: {b: c}\nsteps:\n  - run: a\n",
			[]string{`r.yaml:2:6: vars.a: expected a string, number, boolean or list, got a mapping`}},
		{"vars loop", "vars:\n  a: \"{{ .vars.b }}x\"\n  b: \"{{ .vars.a }}y\"\nsteps:\n  - run: a\n",
			[]string{`r.yaml:2:3: vars refer to each other in a loop`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := recipes.Parse("r.yaml", []byte(tt.src), dir)
			var el recipes.ErrorList
			if !errors.As(err, &el) {
				t.Fatalf("want an ErrorList, got %v", err)
			}
			var got []string
			for _, e := range el {
				got = append(got, e.Error())
			}
			want := strings.ReplaceAll(strings.Join(tt.want, "\n"), "$DIR", dir)
			if strings.Join(got, "\n") != want {
				t.Errorf("errors differ\n got: %s\nwant: %s", strings.Join(got, "\n      "), strings.ReplaceAll(want, "\n", "\n      "))
			}
		})
	}
}
