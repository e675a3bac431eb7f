package steps

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/imgbake/imgbake/recipes"
)

// Tests for the file step kinds: append_line, edit, upload, chmod, chown,
// move, link, touch, truncate and script.

// filesDir is a recipe directory holding a script and a directory.
func filesDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "setup.sh"), []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "files"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestParseFileOps(t *testing.T) {
	dir := filesDir(t)
	src := `name: files
steps:
  - append_line: {path: /etc/environment, line: "EDITOR=vim"}
  - append_line: {path: /etc/x/../modules, line: 42}
  - edit: {path: /etc/ssh/sshd_config, regexp: '^#?PermitRootLogin .*', replace: "PermitRootLogin no"}
  - edit:
      path: /etc/default/grub
      regexp: '(?s)GRUB_CMDLINE_LINUX="(.*?)"'
      replace: 'GRUB_CMDLINE_LINUX="$1 quiet"'
      multiline: true
  - edit: {path: /etc/a, regexp: x, replace: "", multiline: false}
  - upload: {src: ./setup.sh, dest: /usr/local/bin/setup, mode: "0750", owner: "root:staff"}
  - upload: {src: setup.sh, dest: /opt/setup.sh}
  - chmod: {path: /usr/local/bin/setup, mode: "4755"}
  - chmod: {path: /, mode: 0755}
  - chown: {path: /srv/data, owner: "www-data:www-data"}
  - chown: {path: /srv/data/, owner: "1000"}
  - move: {src: /etc/app.conf.dist, dest: /etc/app.conf}
  - link: {target: /usr/share/zoneinfo/UTC, path: /etc/localtime}
  - link: {target: ../run/resolv.conf, path: /etc/resolv.conf}
  - touch: /etc/cloud/cloud-init.disabled
  - truncate: /etc/machine-id
  - script: ./setup.sh
  - script: {src: setup.sh, args: [--fast, 2, true]}
    timeout: 5m
  - script: {src: ./setup.sh}
`
	r, err := recipes.Parse("files.yaml", []byte(src), dir)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	script := filepath.Join(dir, "setup.sh")
	want := []recipes.Op{
		&AppendLine{Path: "/etc/environment", Line: "EDITOR=vim"},
		&AppendLine{Path: "/etc/modules", Line: "42"},
		&Edit{Path: "/etc/ssh/sshd_config", Regexp: `^#?PermitRootLogin .*`, Replace: "PermitRootLogin no"},
		&Edit{Path: "/etc/default/grub", Regexp: `(?s)GRUB_CMDLINE_LINUX="(.*?)"`, Replace: `GRUB_CMDLINE_LINUX="$1 quiet"`, Multiline: true},
		&Edit{Path: "/etc/a", Regexp: "x"},
		&Upload{Src: script, Dest: "/usr/local/bin/setup", Mode: modePtr(0o750), Owner: "root:staff"},
		&Upload{Src: script, Dest: "/opt/setup.sh"},
		&Chmod{Path: "/usr/local/bin/setup", Mode: fs.ModeSetuid | 0o755},
		&Chmod{Path: "/", Mode: 0o755},
		&Chown{Path: "/srv/data", Owner: "www-data:www-data"},
		&Chown{Path: "/srv/data", Owner: "1000"},
		&Move{Src: "/etc/app.conf.dist", Dest: "/etc/app.conf"},
		&Link{Target: "/usr/share/zoneinfo/UTC", Path: "/etc/localtime"},
		&Link{Target: "../run/resolv.conf", Path: "/etc/resolv.conf"},
		&Touch{Path: "/etc/cloud/cloud-init.disabled"},
		&Truncate{Path: "/etc/machine-id"},
		&Script{Src: script},
		&Script{Src: script, Args: []string{"--fast", "2", "true"}},
		&Script{Src: script},
	}
	if len(r.Steps) != len(want) {
		t.Fatalf("got %d steps, want %d", len(r.Steps), len(want))
	}
	for i, w := range want {
		if got := r.Steps[i].Op; !reflect.DeepEqual(got, w) {
			t.Errorf("step %d:\n got %#v\nwant %#v", i+1, got, w)
		}
	}
	if r.Steps[17].Timeout.String() != "5m0s" {
		t.Errorf("script timeout = %s", r.Steps[17].Timeout)
	}
	titles := map[int]string{0: "append_line: /etc/environment", 11: "move: /etc/app.conf.dist -> /etc/app.conf",
		12: "link: /etc/localtime -> /usr/share/zoneinfo/UTC", 16: "script: setup.sh"}
	for i, w := range titles {
		if got := r.Steps[i].Title(); got != w {
			t.Errorf("step %d title %q, want %q", i+1, got, w)
		}
	}
	// Every file kind is registered and covered above.
	covered := map[string]bool{}
	for _, s := range r.Steps {
		covered[s.Op.Kind()] = true
	}
	for _, k := range []string{"append_line", "edit", "upload", "chmod", "chown", "move", "link", "touch", "truncate", "script"} {
		if _, ok := Lookup(k); !ok || !covered[k] {
			t.Errorf("kind %s: registered %v, covered %v", k, ok, covered[k])
		}
	}
}

func TestParseFileOpsInvalid(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string // "$DIR" stands for the recipe directory
	}{
		// append_line
		{"append_line missing line", "steps:\n- append_line: {path: /etc/x}\n",
			[]string{`r.yaml:2:16: append_line: missing required key "line"`}},
		{"append_line relative path", "steps:\n- append_line: {path: etc/x, line: a}\n",
			[]string{`r.yaml:2:23: append_line.path: "etc/x" is not absolute; paths in the image start with /`}},
		{"append_line two lines", "steps:\n- append_line: {path: /etc/x, line: \"a\\nb\"}\n",
			[]string{`r.yaml:2:37: append_line.line: must be a single line (no newline)`}},
		{"append_line empty line", "steps:\n- append_line: {path: /etc/x, line: \"\"}\n",
			[]string{`r.yaml:2:37: append_line.line: empty line`}},
		{"append_line line is a list", "steps:\n- append_line: {path: /etc/x, line: [a]}\n",
			[]string{`r.yaml:2:37: append_line.line: expected a string, got a list`}},
		{"append_line root and misspelled key", "steps:\n- append_line: {path: /, line: a, lines: b}\n",
			[]string{
				`r.yaml:2:23: append_line.path: / is a directory`,
				`r.yaml:2:35: append_line: unknown key "lines"; did you mean "line"?`,
			}},
		{"append_line is a string", "steps:\n- append_line: /etc/x\n",
			[]string{`r.yaml:2:16: append_line: expected a mapping, got string "/etc/x"`}},
		// edit
		{"edit bad regexp", "steps:\n- edit: {path: /etc/x, regexp: \"a(b\", replace: c}\n",
			[]string{"r.yaml:2:32: edit.regexp: invalid regexp: missing closing ): `a(b`"}},
		{"edit bad regexp on its own line", "steps:\n- edit:\n    path: /etc/x\n    regexp: \"[z-a]\"\n    replace: c\n",
			[]string{"r.yaml:4:13: edit.regexp: invalid regexp: invalid character class range: `z-a`"}},
		{"edit bad regexp, block scalar", "steps:\n- edit:\n    path: /etc/x\n    replace: c\n    regexp: |-\n      (?P<x\n",
			[]string{"r.yaml:5:13: edit.regexp: invalid regexp: invalid named capture: `(?P<x`"}},
		{"edit empty regexp", "steps:\n- edit: {path: /etc/x, regexp: \"\", replace: c}\n",
			[]string{`r.yaml:2:32: edit.regexp: empty regexp`}},
		{"edit missing replace", "steps:\n- edit: {path: /etc/x, regexp: a}\n",
			[]string{`r.yaml:2:9: edit: missing required key "replace"`}},
		{"edit multiline not a boolean", "steps:\n- edit: {path: /etc/x, regexp: a, replace: b, multiline: yes}\n",
			[]string{`r.yaml:2:58: edit.multiline: expected true or false, got string "yes"`}},
		{"edit misspelled regexp", "steps:\n- edit: {path: /etc/x, regex: a, replace: b}\n",
			[]string{
				`r.yaml:2:9: edit: missing required key "regexp"`,
				`r.yaml:2:24: edit: unknown key "regex"; did you mean "regexp"?`,
			}},
		{"edit regexp is a mapping", "steps:\n- edit: {path: /etc/x, regexp: {a: b}, replace: b}\n",
			[]string{`r.yaml:2:32: edit.regexp: expected a string, got a mapping`}},
		{"edit relative path", "steps:\n- edit: {path: x, regexp: a, replace: b}\n",
			[]string{`r.yaml:2:16: edit.path: "x" is not absolute; paths in the image start with /`}},
		// upload
		{"upload missing source", "steps:\n- upload: {src: ./nothere, dest: /etc/x}\n",
			[]string{`r.yaml:2:17: upload.src: "./nothere" does not exist (looked for "$DIR/nothere")`}},
		{"upload a directory", "steps:\n- upload: {src: ./files, dest: /etc/x}\n",
			[]string{`r.yaml:2:17: upload.src: "./files" is a directory; use copy_in for directories`}},
		{"upload relative dest", "steps:\n- upload: {src: ./setup.sh, dest: x}\n",
			[]string{`r.yaml:2:35: upload.dest: "x" is not absolute; paths in the image start with /`}},
		{"upload to root, bad mode and owner", "steps:\n- upload: {src: ./setup.sh, dest: /, mode: \"999\", owner: \"a b\"}\n",
			[]string{
				`r.yaml:2:35: upload.dest: / is a directory`,
				`r.yaml:2:44: upload.mode: invalid mode "999"; want octal digits like "0644"`,
				`r.yaml:2:58: upload.owner: invalid owner "a b"; want user or user:group (names or numeric ids)`,
			}},
		{"upload missing src", "steps:\n- upload: {dest: /x}\n",
			[]string{`r.yaml:2:11: upload: missing required key "src"`}},
		{"upload unknown key", "steps:\n- upload: {src: ./setup.sh, dest: /x, group: adm}\n",
			[]string{`r.yaml:2:39: upload: unknown key "group"; valid keys: src, dest, mode, owner`}},
		// chmod
		{"chmod missing mode", "steps:\n- chmod: {path: /x}\n",
			[]string{`r.yaml:2:10: chmod: missing required key "mode"`}},
		{"chmod symbolic mode", "steps:\n- chmod: {path: /x, mode: rwx}\n",
			[]string{`r.yaml:2:27: chmod.mode: invalid mode "rwx"; want octal digits like "0644"`}},
		{"chmod is a string", "steps:\n- chmod: /x\n",
			[]string{`r.yaml:2:10: chmod: expected a mapping, got string "/x"`}},
		{"chmod relative path", "steps:\n- chmod: {path: x, mode: \"0644\"}\n",
			[]string{`r.yaml:2:17: chmod.path: "x" is not absolute; paths in the image start with /`}},
		{"chmod mode is a list", "steps:\n- chmod: {path: /x, mode: [7]}\n",
			[]string{`r.yaml:2:27: chmod.mode: expected an octal mode like "0644", got a list`}},
		// chown
		{"chown missing owner", "steps:\n- chown: {path: /x}\n",
			[]string{`r.yaml:2:10: chown: missing required key "owner"`}},
		{"chown two colons", "steps:\n- chown: {path: /x, owner: \"a:b:c\"}\n",
			[]string{`r.yaml:2:28: chown.owner: invalid owner "a:b:c"; want user or user:group (names or numeric ids)`}},
		{"chown unknown key", "steps:\n- chown: {path: /x, owner: root, mode: \"0644\"}\n",
			[]string{`r.yaml:2:34: chown: unknown key "mode"; valid keys: path, owner`}},
		{"chown owner is a number list", "steps:\n- chown: {path: /x, owner: [0]}\n",
			[]string{`r.yaml:2:28: chown.owner: expected a string, got a list`}},
		// move
		{"move missing dest", "steps:\n- move: {src: /a}\n",
			[]string{`r.yaml:2:9: move: missing required key "dest"`}},
		{"move into itself", "steps:\n- move: {src: /a, dest: /a/b}\n",
			[]string{`r.yaml:2:25: move.dest: "/a/b" is inside move.src "/a"`}},
		{"move onto itself", "steps:\n- move: {src: /a/, dest: /a}\n",
			[]string{`r.yaml:2:26: move.dest: "/a" is the same path as move.src`}},
		{"move root", "steps:\n- move: {src: /, dest: /b}\n",
			[]string{`r.yaml:2:15: move.src: refusing to move /`}},
		{"move relative paths", "steps:\n- move: {src: a, dest: b}\n",
			[]string{
				`r.yaml:2:15: move.src: "a" is not absolute; paths in the image start with /`,
				`r.yaml:2:24: move.dest: "b" is not absolute; paths in the image start with /`,
			}},
		// link
		{"link missing path", "steps:\n- link: {target: /usr/share/zoneinfo/UTC}\n",
			[]string{`r.yaml:2:9: link: missing required key "path"`}},
		{"link empty target", "steps:\n- link: {target: \"\", path: /etc/localtime}\n",
			[]string{`r.yaml:2:18: link.target: empty target`}},
		{"link target is a list, relative path", "steps:\n- link: {target: [x], path: etc/localtime}\n",
			[]string{
				`r.yaml:2:18: link.target: expected a string, got a list`,
				`r.yaml:2:29: link.path: "etc/localtime" is not absolute; paths in the image start with /`,
			}},
		{"link src instead of target", "steps:\n- link: {src: /a, path: /b}\n",
			[]string{
				`r.yaml:2:9: link: missing required key "target"`,
				`r.yaml:2:10: link: unknown key "src"; valid keys: target, path`,
			}},
		// touch, truncate
		{"touch relative", "steps:\n- touch: etc/flag\n",
			[]string{`r.yaml:2:10: touch: "etc/flag" is not absolute; paths in the image start with /`}},
		{"touch is a mapping", "steps:\n- touch: {path: /etc/flag}\n",
			[]string{`r.yaml:2:10: touch: expected a string, got a mapping`}},
		{"touch root", "steps:\n- touch: /\n",
			[]string{`r.yaml:2:10: touch: / is a directory`}},
		{"touch null", "steps:\n- touch:\n",
			[]string{`r.yaml:2:9: touch: expected a string, got null`}},
		{"truncate relative", "steps:\n- truncate: var/log/x\n",
			[]string{`r.yaml:2:13: truncate: "var/log/x" is not absolute; paths in the image start with /`}},
		{"truncate is a list", "steps:\n- truncate: [a]\n",
			[]string{`r.yaml:2:13: truncate: expected a string, got a list`}},
		// script
		{"script missing", "steps:\n- script: ./nothere.sh\n",
			[]string{`r.yaml:2:11: script: "./nothere.sh" does not exist (looked for "$DIR/nothere.sh")`}},
		{"script is a directory", "steps:\n- script: ./files\n",
			[]string{`r.yaml:2:11: script: "./files" is a directory, not a script`}},
		{"script missing src", "steps:\n- script: {args: [a]}\n",
			[]string{`r.yaml:2:11: script: missing required key "src"`}},
		{"script args not a list", "steps:\n- script: {src: ./setup.sh, args: a}\n",
			[]string{`r.yaml:2:35: script.args: expected a list of strings, got string "a"`}},
		{"script arg is a mapping, misspelled key", "steps:\n- script: {src: ./setup.sh, args: [a, {b: c}], arg: x}\n",
			[]string{
				`r.yaml:2:39: script.args: expected a string, got a mapping`,
				`r.yaml:2:48: script: unknown key "arg"; did you mean "args"?`,
			}},
		{"script is a list", "steps:\n- script: [a]\n",
			[]string{`r.yaml:2:11: script: expected a host path or a mapping with src and args, got a list`}},
		{"script null", "steps:\n- script:\n",
			[]string{`r.yaml:2:10: script: expected a host path or a mapping with src and args, got null`}},
		{"script missing, mapping form", "steps:\n- script: {src: gone.sh}\n",
			[]string{`r.yaml:2:17: script.src: "gone.sh" does not exist (looked for "$DIR/gone.sh")`}},
		// several kinds at once: every error is reported
		{"errors in several file steps", "steps:\n- touch: a\n- chmod: {path: /b}\n- link: {target: x, path: c}\n",
			[]string{
				`r.yaml:2:10: touch: "a" is not absolute; paths in the image start with /`,
				`r.yaml:3:10: chmod: missing required key "mode"`,
				`r.yaml:4:27: link.path: "c" is not absolute; paths in the image start with /`,
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filesDir(t)
			r, err := recipes.Parse("r.yaml", []byte(tt.src), dir)
			if err == nil {
				t.Fatalf("Parse succeeded with %d steps, want errors", len(r.Steps))
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
