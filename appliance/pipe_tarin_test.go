package appliance_test

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// tarOf builds a tar stream of entries in the given order.
func tarOf(t *testing.T, entries []tarEntryNamed) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Uid: e.uid, Gid: e.uid, Size: int64(len(e.body)),
			Linkname: e.target, ModTime: time.Unix(1_600_000_000, 0)}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf
}

type tarEntryNamed struct {
	name string
	tarEntry
}

func dirE(name string, mode int64) tarEntryNamed {
	return tarEntryNamed{name, tarEntry{typ: tar.TypeDir, mode: mode}}
}

func fileE(name, body string) tarEntryNamed {
	return tarEntryNamed{name, tarEntry{typ: tar.TypeReg, mode: 0o644, body: body}}
}

// Files are written by several workers in the agent: the result must
// still be that of extracting the entries in order.
func TestPipeTarInKeepsStreamOrder(t *testing.T) {
	cases := []struct {
		name    string
		entries []tarEntryNamed
		wantErr string
		check   func(t *testing.T, root string)
	}{
		{
			name: "a path given twice ends with the later entry",
			entries: func() []tarEntryNamed {
				e := []tarEntryNamed{dirE("d/", 0o755)}
				for i := range 200 {
					e = append(e, fileE(fmt.Sprintf("d/f%03d", i), "first"))
				}
				for i := range 200 {
					e = append(e, fileE(fmt.Sprintf("d/f%03d", i), fmt.Sprintf("second %d", i)))
				}
				return e
			}(),
			check: func(t *testing.T, root string) {
				for i := range 200 {
					if got := readHost(t, filepath.Join(root, fmt.Sprintf("x/d/f%03d", i))); got != fmt.Sprintf("second %d", i) {
						t.Fatalf("d/f%03d = %q, want the later entry", i, got)
					}
				}
			},
		},
		{
			name:    "a directory over a file just written fails as in order",
			entries: []tarEntryNamed{fileE("p", "file"), dirE("p/", 0o755), fileE("p/child", "c")},
			wantErr: "/x/p",
			check: func(t *testing.T, root string) {
				if got := readHost(t, filepath.Join(root, "x/p")); got != "file" {
					t.Errorf("p = %q", got)
				}
			},
		},
		{
			name:    "a file where a non-empty directory is fails",
			entries: []tarEntryNamed{dirE("q/", 0o755), fileE("q/in", "i"), fileE("q", "replaces a directory?")},
			wantErr: "write /x/q",
		},
		{
			name: "many directories, read-only ones filled, modes and times set last",
			entries: func() []tarEntryNamed {
				var e []tarEntryNamed
				for d := range 40 {
					e = append(e, dirE(fmt.Sprintf("t%02d/", d), 0o555))
					for f := range 25 {
						e = append(e, fileE(fmt.Sprintf("t%02d/f%02d", d, f), strings.Repeat(fmt.Sprint(d, f), 100*f)))
					}
				}
				return e
			}(),
			check: func(t *testing.T, root string) {
				for d := range 40 {
					dir := filepath.Join(root, fmt.Sprintf("x/t%02d", d))
					fi, err := os.Stat(dir)
					if err != nil || fi.Mode() != fs.ModeDir|0o555 || fi.ModTime().Unix() != 1_600_000_000 {
						t.Fatalf("%s: %v %v", dir, fi, err)
					}
					for f := range 25 {
						p := filepath.Join(dir, fmt.Sprintf("f%02d", f))
						if got := readHost(t, p); got != strings.Repeat(fmt.Sprint(d, f), 100*f) {
							t.Fatalf("%s has %d bytes of wrong content", p, len(got))
						}
					}
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, root, _ := pipeSession(t)
			res, err := s.TarIn(testCtx(t), "/x", tarOf(t, tc.entries))
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("TarIn: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("TarIn: %v, want an error with %q", err, tc.wantErr)
			case tc.wantErr == "" && res.Files != countFiles(tc.entries):
				t.Errorf("TarIn counted %d files, want %d", res.Files, countFiles(tc.entries))
			}
			if tc.check != nil {
				tc.check(t, root)
			}
			// The session still works after the call, failed or not.
			if _, err := s.Stat(testCtx(t), "/x"); err != nil {
				t.Fatalf("Stat after TarIn: %v", err)
			}
		})
	}
}

func countFiles(entries []tarEntryNamed) int {
	n := 0
	for _, e := range entries {
		if e.typ == tar.TypeReg || e.typ == tar.TypeSymlink {
			n++
		}
	}
	return n
}
