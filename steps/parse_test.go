package steps

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imgbake/imgbake/recipes"
)

func modePtr(m fs.FileMode) *fs.FileMode { return &m }

func TestParseValid(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "files"), 0o755); err != nil {
		t.Fatal(err)
	}
	src := `name: demo
steps:
  - name: set the hostname
    hostname: baked
    timeout: 30s
  - run: echo hello > /root/hello
    ignore_errors: true
  - write:
      path: /etc/motd
      content: "Welcome\n"
      mode: "0644"
      owner: root:root
  - write: {path: /etc/issue, content: ""}
  - write: {path: /usr/local/bin/tool, content: 42, mode: 0755, owner: "0:0"}
  - mkdir: {path: /opt/app/, mode: "0o2775", owner: app}
  - mkdir: {path: /srv}
  - copy_in: {src: ./files, dest: /opt/app}
  - copy_out: {src: /etc/os-release, dest: ./out}
  - delete: /root/hello
    ignore_errors: false
`
	r, err := recipes.Parse("demo.yaml", []byte(src), dir)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	sum := sha256.Sum256([]byte(src))
	if r.Name != "demo" || r.File != "demo.yaml" || r.Dir != dir || r.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("recipe = {Name: %q, File: %q, Dir: %q, SHA256: %q}", r.Name, r.File, r.Dir, r.SHA256)
	}
	pos := func(line int) recipes.Position { return recipes.Position{File: "demo.yaml", Line: line, Col: 5} }
	want := []recipes.Step{
		{Index: 1, Name: "set the hostname", Timeout: 30 * time.Second, Pos: pos(3), Op: &Hostname{Name: "baked"}},
		{Index: 2, IgnoreErrors: true, Pos: pos(6), Op: &Run{Command: "echo hello > /root/hello"}},
		{Index: 3, Pos: pos(8), Op: &Write{Path: "/etc/motd", Content: "Welcome\n", Mode: modePtr(0o644), Owner: "root:root"}},
		{Index: 4, Pos: pos(13), Op: &Write{Path: "/etc/issue"}},
		{Index: 5, Pos: pos(14), Op: &Write{Path: "/usr/local/bin/tool", Content: "42", Mode: modePtr(0o755), Owner: "0:0"}},
		{Index: 6, Pos: pos(15), Op: &Mkdir{Path: "/opt/app", Mode: modePtr(fs.ModeSetgid | 0o775), Owner: "app"}},
		{Index: 7, Pos: pos(16), Op: &Mkdir{Path: "/srv"}},
		{Index: 8, Pos: pos(17), Op: &CopyIn{Src: filepath.Join(dir, "files"), Dest: "/opt/app"}, HostPaths: []string{filepath.Join(dir, "files")}},
		{Index: 9, Pos: pos(18), Op: &CopyOut{Src: "/etc/os-release", Dest: filepath.Join(dir, "out")}, HostPaths: []string{filepath.Join(dir, "out")}},
		{Index: 10, Pos: pos(19), Op: &Delete{Path: "/root/hello"}},
	}
	if len(r.Steps) != len(want) {
		t.Fatalf("got %d steps, want %d", len(r.Steps), len(want))
	}
	for i := range want {
		if !reflect.DeepEqual(r.Steps[i], want[i]) {
			t.Errorf("step %d:\n got %+v %+v\nwant %+v %+v", i+1, r.Steps[i], r.Steps[i].Op, want[i], want[i].Op)
		}
	}

	// Keep this test covering every op: a new kind must be added above.
	var kinds []string
	for _, s := range r.Steps {
		kinds = append(kinds, s.Op.Kind())
	}
	slices.Sort(kinds)
	// Other kinds are covered by their own ops_*_test.go / lang_test.go.
	core := []string{"copy_in", "copy_out", "delete", "hostname", "mkdir", "run", "write"}
	if got := slices.Compact(kinds); !slices.Equal(got, core) {
		t.Errorf("test covers kinds %v, want the core kinds %v", got, core)
	}
}

func TestKinds(t *testing.T) {
	core := []string{"copy_in", "copy_out", "delete", "hostname", "mkdir", "run", "template", "write"}
	got := recipes.Kinds()
	if !slices.IsSorted(got) {
		t.Errorf("Kinds() = %v, not sorted", got)
	}
	for _, k := range core {
		if !slices.Contains(got, k) {
			t.Errorf("Kinds() = %v, lacks %q", got, k)
		}
	}
}

func TestParseInvalid(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	tests := []struct {
		name string
		src  string
		want []string // "$DIR" stands for the recipe directory
	}{
		{"empty file", "",
			[]string{`r.yaml:1:1: recipe is empty; it needs a steps list`}},
		{"only a comment", "# nothing yet\n",
			[]string{`r.yaml:1:1: recipe is empty; it needs a steps list`}},
		{"scanner error", "name: x\nsteps:\n\t- run: a\n",
			[]string{`r.yaml:3:1: yaml: found character that cannot start any token`}},
		{"parser error", "name: x\nsteps: [{run: a}\n",
			[]string{`r.yaml:2:1: yaml: did not find expected ',' or ']'`}},
		{"unknown anchor", "steps:\n- run: *cmd\n",
			[]string{`r.yaml:2:8: yaml: unknown anchor 'cmd' referenced`}},
		{"two documents", "steps:\n- run: a\n---\nsteps:\n- run: b\n",
			[]string{`r.yaml:3:1: recipe must be a single YAML document`}},
		{"relative disk_size", "disk_size: +2G\nsteps:\n- run: a\n",
			[]string{`r.yaml:1:12: disk_size: "+2G" is relative: a recipe names the size the disk must have (e.g. 20G), so that a second run changes nothing`}},
		{"bad disk_size", "disk_size: big\nsteps:\n- run: a\n",
			[]string{`r.yaml:1:12: disk_size: size "big": expected e.g. 20G or +10G`}},
		{"top level is a list", "- run: a\n",
			[]string{`r.yaml:1:1: expected a mapping, got a list`}},
		{"top level is a string", "hello\n",
			[]string{`r.yaml:1:1: expected a mapping, got string "hello"`}},
		{"missing steps", "name: x\n",
			[]string{`r.yaml:1:1: missing required key "steps"`}},
		{"misspelled steps", "name: x\nstep:\n  - run: a\n",
			[]string{
				`r.yaml:1:1: missing required key "steps"`,
				`r.yaml:2:1: unknown key "step"; did you mean "steps"?`,
			}},
		{"unknown top-level key", "version: 2\nsteps:\n- run: a\n",
			[]string{`r.yaml:1:1: unknown key "version"; valid keys: name, vars, disk_size, steps`}},
		{"empty steps", "steps: []\n",
			[]string{`r.yaml:1:8: steps: list is empty; a recipe needs at least one step`}},
		{"null steps", "name: x\nsteps:\n",
			[]string{`r.yaml:2:7: steps: list is empty; a recipe needs at least one step`}},
		{"steps is a mapping", "steps:\n  run: a\n",
			[]string{`r.yaml:2:3: steps: expected a list, got a mapping`}},
		{"name is a mapping", "name: {a: b}\nsteps:\n- run: a\n",
			[]string{`r.yaml:1:7: name: expected a string, got a mapping`}},
		{"step is a string", "steps:\n- hostname\n",
			[]string{`r.yaml:2:3: expected a step mapping with one operation, got string "hostname"`}},
		{"step without operation", "steps:\n- name: only a name\n",
			[]string{`r.yaml:2:3: step has no operation; add one of: ` + strings.Join(recipes.Kinds(), ", ")}},
		{"two operations", "steps:\n- run: a\n  hostname: b\n",
			[]string{`r.yaml:3:3: step has more than one operation ("run", "hostname"); use a separate step for each`}},
		{"misspelled operation", "steps:\n- hostnme: b\n",
			[]string{`r.yaml:2:3: unknown key "hostnme"; did you mean "hostname"?`}},
		{"unknown step key", "steps:\n- run: a\n  retries: 3\n",
			[]string{`r.yaml:3:3: unknown key "retries"; a step needs one operation (` + strings.Join(recipes.Kinds(), ", ") + `) and may have cache, changed_when, creates, ignore_errors, name, timeout, when`}},
		{"duplicate step key", "steps:\n- run: a\n  run: b\n",
			[]string{`r.yaml:3:3: duplicate key "run" (first at 2:3)`}},
		{"non-string key", "steps:\n- [a]: b\n  run: c\n",
			[]string{`r.yaml:2:3: keys must be strings, got a list`}},
		{"write is a number", "steps:\n- write: 5\n",
			[]string{`r.yaml:2:10: write: expected a mapping, got integer 5`}},
		{"write missing keys", "steps:\n- write: {mode: \"0600\"}\n",
			[]string{
				`r.yaml:2:10: write: missing required key "path"`,
				`r.yaml:2:10: write: missing required key "content"`,
			}},
		{"write misspelled key", "steps:\n- write:\n    path: /etc/motd\n    contents: hi\n",
			[]string{
				`r.yaml:3:5: write: missing required key "content"`,
				`r.yaml:4:5: write: unknown key "contents"; did you mean "content"?`,
			}},
		{"write duplicate key", "steps:\n- write: {path: /a, path: /b, content: x}\n",
			[]string{`r.yaml:2:21: write: duplicate key "path" (first at 2:11)`}},
		{"relative image path", "steps:\n- write: {path: etc/motd, content: x}\n",
			[]string{`r.yaml:2:17: write.path: "etc/motd" is not absolute; paths in the image start with /`}},
		{"write to root", "steps:\n- write: {path: /, content: x}\n",
			[]string{`r.yaml:2:17: write.path: / is a directory`}},
		{"NUL in path", "steps:\n- delete: \"/tmp/a\\0b\"\n",
			[]string{`r.yaml:2:11: delete: "/tmp/a\x00b" contains a NUL byte`}},
		{"empty path", "steps:\n- mkdir: {path: \"\"}\n",
			[]string{`r.yaml:2:17: mkdir.path: empty path`}},
		{"mode not octal", "steps:\n- write: {path: /a, content: x, mode: abc}\n",
			[]string{`r.yaml:2:39: write.mode: invalid mode "abc"; want octal digits like "0644"`}},
		{"mode out of range", "steps:\n- write: {path: /a, content: x, mode: \"17777\"}\n",
			[]string{`r.yaml:2:39: write.mode: "17777" is out of range (max 07777)`}},
		{"mode is hex", "steps:\n- mkdir: {path: /a, mode: 0x1ff}\n",
			[]string{`r.yaml:2:27: mkdir.mode: invalid mode "0x1ff"; want octal digits like "0644"`}},
		{"mode is a list", "steps:\n- mkdir: {path: /a, mode: [7]}\n",
			[]string{`r.yaml:2:27: mkdir.mode: expected an octal mode like "0644", got a list`}},
		{"owner with two colons", "steps:\n- write: {path: /a, content: x, owner: \"root:wheel:x\"}\n",
			[]string{`r.yaml:2:40: write.owner: invalid owner "root:wheel:x"; want user or user:group (names or numeric ids)`}},
		{"owner with space", "steps:\n- mkdir: {path: /a, owner: root wheel}\n",
			[]string{`r.yaml:2:28: mkdir.owner: invalid owner "root wheel"; want user or user:group (names or numeric ids)`}},
		{"owner like an option", "steps:\n- mkdir: {path: /a, owner: \"-R\"}\n",
			[]string{`r.yaml:2:28: mkdir.owner: invalid owner "-R"; want user or user:group (names or numeric ids)`}},
		{"misspelled mkdir key", "steps:\n- mkdir: {path: /a, ownr: root}\n",
			[]string{`r.yaml:2:21: mkdir: unknown key "ownr"; did you mean "owner"?`}},
		{"ignore_errors not a boolean", "steps:\n- run: a\n  ignore_errors: maybe\n",
			[]string{`r.yaml:3:18: ignore_errors: expected true or false, got string "maybe"`}},
		{"timeout without unit", "steps:\n- run: a\n  timeout: 30\n",
			[]string{`r.yaml:3:12: timeout: invalid duration "30"; want e.g. "30s" or "5m"`}},
		{"negative timeout", "steps:\n- run: a\n  timeout: -1m\n",
			[]string{`r.yaml:3:12: timeout: must be positive, got "-1m"`}},
		{"zero timeout", "steps:\n- run: a\n  timeout: 0s\n",
			[]string{`r.yaml:3:12: timeout: must be positive, got "0s"`}},
		{"step name is a list", "steps:\n- name: [a]\n  run: a\n",
			[]string{`r.yaml:2:9: name: expected a string, got a list`}},
		{"hostname with underscore", "steps:\n- hostname: foo_bar\n",
			[]string{`r.yaml:2:13: hostname: "foo_bar" contains '_'; only letters, digits, '-' and '.' are allowed`}},
		{"hostname with leading hyphen", "steps:\n- hostname: -web.example\n",
			[]string{`r.yaml:2:13: hostname: label "-web" starts or ends with '-'`}},
		{"hostname with empty label", "steps:\n- hostname: web..example\n",
			[]string{`r.yaml:2:13: hostname: "web..example" has an empty label`}},
		{"hostname label too long", "steps:\n- hostname: " + long(64) + "\n",
			[]string{`r.yaml:2:13: hostname: label "` + long(39) + `…" is 64 characters long (max 63)`}},
		{"hostname too long", "steps:\n- hostname: " + strings.Repeat(long(63)+".", 3) + long(63) + "\n",
			[]string{`r.yaml:2:13: hostname: "` + long(39) + `…" is 255 characters long (max 253)`}},
		{"hostname null", "steps:\n- hostname:\n",
			[]string{`r.yaml:2:12: hostname: expected a string, got null`}},
		{"empty run", "steps:\n- run: \"\"\n",
			[]string{`r.yaml:2:8: run: command is empty`}},
		{"blank run", "steps:\n- run: \"  \\n\"\n",
			[]string{`r.yaml:2:8: run: command is empty`}},
		{"null run", "steps:\n- run:\n  name: x\n",
			[]string{`r.yaml:2:7: run: command is empty`}},
		{"run is a list", "steps:\n- run: [a, b]\n",
			[]string{`r.yaml:2:8: run: expected a string, got a list`}},
		{"copy_in missing source", "steps:\n- copy_in: {src: ./files, dest: /opt}\n",
			[]string{`r.yaml:2:18: copy_in.src: "./files" does not exist (looked for "$DIR/files")`}},
		{"copy_in relative dest", "steps:\n- copy_in: {src: ., dest: opt}\n",
			[]string{`r.yaml:2:27: copy_in.dest: "opt" is not absolute; paths in the image start with /`}},
		{"copy_out missing dest", "steps:\n- copy_out: {src: /etc/os-release}\n",
			[]string{`r.yaml:2:13: copy_out: missing required key "dest"`}},
		{"copy_out relative src", "steps:\n- copy_out: {src: etc, dest: out}\n",
			[]string{`r.yaml:2:19: copy_out.src: "etc" is not absolute; paths in the image start with /`}},
		{"delete root", "steps:\n- delete: /usr/..\n",
			[]string{`r.yaml:2:11: delete: refusing to delete /`}},
		{"delete is a mapping", "steps:\n- delete: {path: /a}\n",
			[]string{`r.yaml:2:11: delete: expected a string, got a mapping`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			r, err := recipes.Parse("r.yaml", []byte(tt.src), dir)
			if err == nil {
				t.Fatalf("Parse succeeded with %d steps, want errors", len(r.Steps))
			}
			if r != nil {
				t.Errorf("Parse returned a recipe along with error %v", err)
			}
			if !errors.Is(err, recipes.ErrInvalid) {
				t.Errorf("errors.Is(err, ErrInvalid) = false for %v", err)
			}
			want := strings.ReplaceAll(strings.Join(tt.want, "\n"), "$DIR", dir)
			if got := err.Error(); got != want {
				t.Errorf("errors differ\n got: %s\nwant: %s", got, want)
			}
		})
	}
}

func TestParseReportsAllErrors(t *testing.T) {
	src := `name: [bad]
steps:
  - hostname: bad_name
    timeout: soon
  - run: ""
    ignore_errors: maybe
  - write: {path: relative, content: x, mode: "999"}
  - copy_in: {src: missing, dest: /x}
  - frobnicate: yes
`
	dir := t.TempDir()
	_, err := recipes.Parse("multi.yaml", []byte(src), dir)
	want := []string{
		`multi.yaml:1:7: name: expected a string, got a list`,
		`multi.yaml:3:15: hostname: "bad_name" contains '_'; only letters, digits, '-' and '.' are allowed`,
		`multi.yaml:4:14: timeout: invalid duration "soon"; want e.g. "30s" or "5m"`,
		`multi.yaml:5:10: run: command is empty`,
		`multi.yaml:6:20: ignore_errors: expected true or false, got string "maybe"`,
		`multi.yaml:7:19: write.path: "relative" is not absolute; paths in the image start with /`,
		`multi.yaml:7:47: write.mode: invalid mode "999"; want octal digits like "0644"`,
		`multi.yaml:8:20: copy_in.src: "missing" does not exist (looked for "` + filepath.Join(dir, "missing") + `")`,
		`multi.yaml:9:5: unknown key "frobnicate"; a step needs one operation (` + strings.Join(recipes.Kinds(), ", ") + `) and may have cache, changed_when, creates, ignore_errors, name, timeout, when`,
	}
	var list recipes.ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("error %v (%T) is not an ErrorList", err, err)
	}
	var got []string
	for _, e := range list {
		got = append(got, e.Error())
	}
	if !slices.Equal(got, want) {
		t.Errorf("errors differ\n got: %s\nwant: %s", strings.Join(got, "\n      "), strings.Join(want, "\n      "))
	}
	var first *recipes.Error
	if !errors.As(err, &first) || first != list[0] {
		t.Errorf("errors.As(*Error) = %v, want the first entry", first)
	}
	if !errors.Is(err, recipes.ErrInvalid) || !errors.Is(list[3], recipes.ErrInvalid) {
		t.Errorf("errors do not match ErrInvalid")
	}
}

func TestHostPaths(t *testing.T) {
	root := t.TempDir()
	recipeDir := filepath.Join(root, "recipes")
	for _, d := range []string{filepath.Join(recipeDir, "files"), filepath.Join(root, "shared")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	src := `steps:
  - copy_in: {src: files, dest: /a}
  - copy_in: {src: ../shared/, dest: /b}
  - copy_in: {src: ` + filepath.Join(root, "shared") + `, dest: /c}
  - copy_out: {src: /etc, dest: out/etc}
  - copy_out: {src: /etc, dest: /abs/out}
`
	if err := os.WriteFile(filepath.Join(recipeDir, "host.yaml"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	// Load with a path relative to the working directory: host paths must
	// still resolve against the recipe's own directory.
	t.Chdir(root)
	r, err := recipes.Load(filepath.Join("recipes", "host.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if r.File != filepath.Join("recipes", "host.yaml") || r.Dir != recipeDir || r.Name != "host" {
		t.Errorf("File, Dir, Name = %q, %q, %q", r.File, r.Dir, r.Name)
	}
	want := []string{
		filepath.Join(recipeDir, "files"),
		filepath.Join(root, "shared"),
		filepath.Join(root, "shared"),
		filepath.Join(recipeDir, "out", "etc"),
		"/abs/out",
	}
	for i, s := range r.Steps {
		var got string
		switch op := s.Op.(type) {
		case *CopyIn:
			got = op.Src
		case *CopyOut:
			got = op.Dest
		}
		if got != want[i] {
			t.Errorf("step %d host path = %q, want %q", i+1, got, want[i])
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.yaml")
	_, err := recipes.Load(path)
	if err == nil {
		t.Fatal("Load succeeded")
	}
	want := "load recipe: open " + path + ": no such file or directory"
	if err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("error does not match fs.ErrNotExist")
	}
	if errors.Is(err, recipes.ErrInvalid) {
		t.Errorf("a missing file should not count as an invalid recipe")
	}
}

func TestStepTitle(t *testing.T) {
	tests := []struct {
		step recipes.Step
		want string
	}{
		{recipes.Step{Name: "set the hostname", Op: &Hostname{Name: "baked"}}, "set the hostname"},
		{recipes.Step{Op: &Hostname{Name: "baked"}}, "hostname: baked"},
		{recipes.Step{Op: &Run{Command: "echo hello > /root/hello"}}, "run: echo hello > /root/hello"},
		{recipes.Step{Op: &Run{Command: "\n  apt-get update\n  apt-get -y install nginx\n"}}, "run: apt-get update …"},
		{recipes.Step{Op: &Run{Command: "printf 'a\tb'"}}, "run: printf 'a b'"},
		{recipes.Step{Op: &Run{Command: strings.Repeat("x", 100)}}, "run: " + strings.Repeat("x", 54) + "…"},
		{recipes.Step{Op: &Write{Path: "/etc/motd"}}, "write: /etc/motd"},
		{recipes.Step{Op: &CopyIn{Src: "/src", Dest: "/dest"}}, "copy_in: /src -> /dest"},
		{recipes.Step{Name: "two\nlines"}, "two …"},
		{recipes.Step{Index: 3}, "step 3"},
	}
	for _, tt := range tests {
		got := tt.step.Title()
		if got != tt.want {
			t.Errorf("Title() = %q, want %q", got, tt.want)
		}
		if n := len([]rune(got)); n > 60 {
			t.Errorf("Title() = %q is %d characters long", got, n)
		}
	}
}

func TestErrorFormat(t *testing.T) {
	list := recipes.ErrorList{
		{Pos: recipes.Position{File: "a.yaml", Line: 2, Col: 3}, Msg: "first"},
		{Pos: recipes.Position{File: "a.yaml", Line: 10, Col: 1}, Msg: "second"},
	}
	if got, want := list.Error(), "a.yaml:2:3: first\na.yaml:10:1: second"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if got := list[0].Pos.String(); got != "a.yaml:2:3" {
		t.Errorf("Position.String() = %q", got)
	}
}
