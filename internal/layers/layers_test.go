// Package layers holds the test that keeps imgbake's import graph a
// one-way tower: cmd → bake, session → steps → recipes, fsops →
// appliance → image.
package layers

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/imgbake/imgbake/"

// forbidden lists, per package prefix, the package prefixes its non-test
// code must not import (directly).
var forbidden = map[string][]string{
	"recipes":   {"appliance", "image", "fsops", "steps", "bake", "session", "cmd"},
	"fsops":     {"recipes", "steps", "bake", "session", "cmd"},
	"steps":     {"bake", "session", "cmd", "appliance/agent"},
	"bake":      {"session", "cmd"},
	"session":   {"cmd"},
	"appliance": {"recipes", "fsops", "steps", "bake", "session", "cmd"},
	"image":     {"appliance", "recipes", "fsops", "steps", "bake", "session", "cmd"},
	// The appliance's shared facts are stdlib-only: the static agent imports them.
	"appliance/proto": {"appliance/agent", "image"},
}

// imports returns the imgbake imports of the non-test Go files of every
// package under root, keyed by package path relative to the module.
func imports(t *testing.T, root string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && p != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), p, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(p))
		for _, im := range f.Imports {
			path := strings.Trim(im.Path.Value, `"`)
			if rest, ok := strings.CutPrefix(path, module); ok {
				out[filepath.ToSlash(rel)] = append(out[filepath.ToSlash(rel)], rest)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func under(pkg, prefix string) bool { return pkg == prefix || strings.HasPrefix(pkg, prefix+"/") }

func TestImportTower(t *testing.T) {
	graph := imports(t, "../..")
	if len(graph) < 10 {
		t.Fatalf("found only %d packages: wrong root?", len(graph))
	}
	for pkg, deps := range graph {
		for _, dep := range deps {
			if under(dep, "cmd") {
				t.Errorf("%s imports %s: nothing imports cmd", pkg, dep)
			}
			for prefix, bans := range forbidden {
				if !under(pkg, prefix) {
					continue
				}
				for _, ban := range bans {
					if under(dep, ban) && !under(dep, pkg) && !(prefix == "appliance" && under(dep, "appliance")) {
						t.Errorf("%s imports %s: %s must not import %s", pkg, dep, prefix, ban)
					}
				}
			}
		}
	}
	// cmd/imgbake reaches the appliance only through bake and fsops.
	for _, dep := range graph["cmd/imgbake"] {
		if under(dep, "appliance") || under(dep, "image") {
			t.Errorf("cmd/imgbake imports %s: it reaches the appliance and images only through bake, session and fsops", dep)
		}
	}
}
