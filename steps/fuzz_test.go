package steps

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgbake/imgbake/recipes"
)

// FuzzParse checks that Parse never panics and that every failure is an
// ErrorList of positioned, single-line errors.
func FuzzParse(f *testing.F) {
	dir := f.TempDir()
	// Let copy_in sources in the seeds exist, so fuzzing reaches past them.
	if err := os.Mkdir(filepath.Join(dir, "files"), 0o755); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := recipes.Parse("fuzz.yaml", data, dir)
		if err == nil {
			if r == nil || len(r.Steps) == 0 {
				t.Fatalf("Parse returned no error and recipe %+v", r)
			}
			for _, s := range r.Steps {
				if s.Op == nil {
					t.Fatalf("step %d has no op", s.Index)
				}
				if title := s.Title(); strings.Contains(title, "\n") {
					t.Fatalf("step %d title %q spans lines", s.Index, title)
				}
			}
			return
		}
		if r != nil {
			t.Fatalf("Parse returned a recipe along with error %v", err)
		}
		var list recipes.ErrorList
		if !errors.As(err, &list) || len(list) == 0 {
			t.Fatalf("error %q (%T) is not a non-empty ErrorList", err, err)
		}
		if !errors.Is(err, recipes.ErrInvalid) {
			t.Fatalf("error %q does not match ErrInvalid", err)
		}
		for _, e := range list {
			if e.Pos.Line < 1 || e.Pos.Col < 1 || e.Pos.File != "fuzz.yaml" {
				t.Fatalf("error %q has position %+v", e.Msg, e.Pos)
			}
		}
		if lines := strings.Count(err.Error(), "\n") + 1; lines != len(list) {
			t.Fatalf("%d errors printed on %d lines:\n%s", len(list), lines, err)
		}
	})
}
