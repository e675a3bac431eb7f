package steps

import (
	"flag"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the README's step reference from the registry")

// readmeBlocks are the README's generated parts, each between its markers.
var readmeBlocks = []struct {
	begin, end string
	content    func() string
}{
	{"<!-- steps reference: generated from the registry by `go test ./steps -run TestReadmeReference -update` -->\n",
		"<!-- end of steps reference -->\n", Reference},
	{"<!-- sysprep operations: generated from fsops.SysprepOperations by `go test ./steps -run TestReadmeReference -update` -->\n",
		"<!-- end of sysprep operations -->\n", SysprepReference},
}

// TestReadmeReference keeps the README's step table and sysprep
// operations table equal to the tables they come from.
func TestReadmeReference(t *testing.T) {
	const readme = "../README.md"
	b, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	want := s
	for _, blk := range readmeBlocks {
		i, j := strings.Index(want, blk.begin), strings.Index(want, blk.end)
		if i < 0 || j < i {
			t.Fatalf("%s has no generated block between %q and %q", readme, blk.begin, blk.end)
		}
		want = want[:i+len(blk.begin)] + blk.content() + want[j:]
	}
	if want == s {
		return
	}
	if *update {
		if err := os.WriteFile(readme, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("the README's generated tables are out of date: run go test ./steps -run TestReadmeReference -update")
}
