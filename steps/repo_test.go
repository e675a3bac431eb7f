package steps

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/imgbake/imgbake/recipes"
)

func TestRepoParse(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "key.asc"), []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rec, err := recipes.Parse("r.yaml", []byte(`steps:
  - repo: {name: ex, url: "https://h/debian", suite: bookworm, components: [main, contrib], key: ./key.asc}
    when: os.family == "debian"
  - repo: {name: ex, description: Example, url: "http://10.0.2.2:8000/$basearch", trusted: true}
    when: os.family in ["rhel", "suse", "arch"]
`), dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []*Repo{
		{Name: "ex", URL: "https://h/debian", Suite: "bookworm", Components: []string{"main", "contrib"}, Key: filepath.Join(dir, "key.asc")},
		{Name: "ex", Description: "Example", URL: "http://10.0.2.2:8000/$basearch", Trusted: true},
	}
	for i, w := range want {
		if got := rec.Steps[i].Op; !reflect.DeepEqual(got, w) {
			t.Errorf("step %d = %+v, want %+v", i+1, got, w)
		}
	}
	if got := rec.Steps[0].HostPaths; len(got) != 1 || got[0] != filepath.Join(dir, "key.asc") {
		t.Errorf("HostPaths = %v: the key is an input of the step's cache key", got)
	}

	bad := []struct{ step, want string }{
		{`repo: {url: "http://h/"}`, `missing required key "name"`},
		{`repo: {name: ex}`, `missing required key "url"`},
		{`repo: {name: "../x", url: "http://h/"}`, `repo.name: "../x" may only contain`},
		{`repo: {name: ex, url: "h/r"}`, `want an http, https, ftp or file URL`},
		{`repo: {name: ex, url: "http:///r"}`, `no host`},
		{`repo: {name: ex, url: "http://h/a b"}`, `no spaces`},
		{`repo: {name: ex, url: "file:relative"}`, `absolute path`},
		{`repo: {name: ex, url: "http://h/\nx"}`, `single line`},
		{`repo: {name: ex, url: "http://h/", key: ./missing.asc}`, `missing.asc`},
		{`repo: {name: ex, url: "http://h/", key: ./key.asc, trusted: true}`, `not both`},
		{`repo: {name: ex, url: "http://h/", suite: ./, components: [main]}`, `has no components`},
		{`repo: {name: ex, url: "http://h/", components: ["-o x"]}`, `not an apt component`},
		{`repo: {name: ex, url: "http://h/", gpgcheck: false}`, `unknown key "gpgcheck"`},
	}
	for _, tc := range bad {
		_, err := recipes.Parse("r.yaml", []byte("steps:\n  - "+tc.step+"\n"), dir)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "r.yaml:2:") {
			t.Errorf("%s: err = %v, want r.yaml:2:...%s", tc.step, err, tc.want)
		}
	}
}
