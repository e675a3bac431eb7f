package steps

import (
	"flag"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the README's step reference from the registry")

const (
	refBegin = "<!-- steps reference: generated from the registry by `go test ./steps -run TestReadmeReference -update` -->\n"
	refEnd   = "<!-- end of steps reference -->\n"
)

// TestReadmeReference keeps the README's step table equal to the registry.
func TestReadmeReference(t *testing.T) {
	const readme = "../README.md"
	b, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i, j := strings.Index(s, refBegin), strings.Index(s, refEnd)
	if i < 0 || j < i {
		t.Fatalf("%s has no step reference between %q and %q", readme, refBegin, refEnd)
	}
	want := s[:i+len(refBegin)] + Reference() + s[j:]
	if want == s {
		return
	}
	if *update {
		if err := os.WriteFile(readme, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("the README's step reference is out of date: run go test ./steps -run TestReadmeReference -update")
}
