package fsops

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
)

// TestTreeWriterReadAhead: small files are read ahead by several
// goroutines, yet the stream is the walk's order (each directory before its
// entries, entries sorted) with every file's own content, in trees wider
// and deeper than the read-ahead window, with files on both sides of the
// read-ahead size and empty ones.
func TestTreeWriterReadAhead(t *testing.T) {
	cases := []struct {
		name  string
		dirs  int
		files int
		size  func(i int) int
	}{
		{"one wide directory", 1, 3 * readAheadFiles, func(i int) int { return i * 37 }},
		{"sizes around the read-ahead limit", 3, 10, func(i int) int { return readAheadMaxSize - 5 + i }},
		{"empty files", 2, readAheadFiles + 1, func(int) int { return 0 }},
		{"nested directories", 6, 5, func(i int) int { return 100 * i }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "root")
			want := map[string]string{}
			dir := root
			for d := range tc.dirs {
				dir = filepath.Join(dir, fmt.Sprintf("d%d", d)) // each inside the last
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				for i := range tc.files {
					body := strings.Repeat(fmt.Sprintf("%d.%d;", d, i), tc.size(i)/4+1)[:tc.size(i)]
					p := filepath.Join(dir, fmt.Sprintf("f%03d", i))
					if err := os.WriteFile(p, []byte(body), 0o640); err != nil {
						t.Fatal(err)
					}
					rel, _ := filepath.Rel(filepath.Dir(root), p)
					want[rel] = body
				}
			}
			if err := os.Symlink("d0/f000", filepath.Join(root, "link")); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Lstat(root)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			if err := writeTree(tw, root, "root", fi); err != nil {
				t.Fatal(err)
			}
			if err := tw.Close(); err != nil {
				t.Fatal(err)
			}

			seen := map[string]bool{}
			last := map[string]string{} // directory -> last entry name in it
			tr := tar.NewReader(&buf)
			for {
				h, err := tr.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				name := strings.TrimSuffix(h.Name, "/")
				parent, base := path.Split(name)
				parent = strings.TrimSuffix(parent, "/")
				if parent != "" && !seen[parent] {
					t.Fatalf("%s comes before its directory", name)
				}
				if base <= last[parent] {
					t.Fatalf("%s comes after %s/%s: not in walk order", name, parent, last[parent])
				}
				last[parent], seen[name] = base, true
				switch h.Typeflag {
				case tar.TypeReg:
					body, err := io.ReadAll(tr)
					if err != nil {
						t.Fatal(err)
					}
					w, ok := want[name]
					if !ok || string(body) != w || h.Size != int64(len(w)) || h.Mode != 0o640 {
						t.Fatalf("%s: %d bytes, mode %o; want %d bytes (known: %v), mode 640", name, len(body), h.Mode, len(w), ok)
					}
					delete(want, name)
				case tar.TypeSymlink:
					if h.Linkname != "d0/f000" {
						t.Errorf("link -> %q", h.Linkname)
					}
				}
			}
			if len(want) != 0 {
				t.Errorf("%d files missing from the stream", len(want))
			}
		})
	}
}
