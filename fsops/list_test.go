package fsops_test

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/fsops/fsopstest"
)

func TestList(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"a/b", "proc/1", "c"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(root, "a/b/f"), []byte("x"), 0o644)
	os.Symlink("/a", filepath.Join(root, "c/loop"))
	s := fsopstest.New(t, root, nil)
	var dirs []string
	visit := func(l fsops.Listing) error {
		name := l.Dir
		if name == "" {
			name = "entry " + l.Entries[0].Name
		}
		dirs = append(dirs, name)
		return nil
	}
	if err := fsops.List(context.Background(), s, "/", true, visit); err != nil {
		t.Fatal(err)
	}
	if want := []string{"/", "/a", "/a/b", "/c"}; !reflect.DeepEqual(dirs, want) {
		t.Errorf("recursive listing visited %v, want %v (no /proc, no symlink)", dirs, want)
	}
	dirs = nil
	if err := fsops.List(context.Background(), s, "/a/b/f", true, visit); err != nil || !reflect.DeepEqual(dirs, []string{"entry /a/b/f"}) {
		t.Errorf("a file: %v, %v", dirs, err)
	}
	if err := fsops.List(context.Background(), s, "/missing", false, visit); err == nil || !fsops.IsPathError(err) {
		t.Errorf("a missing path: %v", err)
	}
}
