package appliance_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestReadDirPipe lists directories of the in-process agent: attributes,
// symlinks not followed, many entries, and links that lead out of the root
// resolved inside it.
func TestReadDirPipe(t *testing.T) {
	s, root, outside, _ := hostileRoot(t)
	ctx := testCtx(t)
	must(t, os.MkdirAll(filepath.Join(root, "etc", "sub"), 0o750))
	must(t, os.WriteFile(filepath.Join(root, "etc", "passwd"), []byte("root:x:0:0::/root:/bin/sh\n"), 0o644))
	must(t, os.Symlink("/etc/passwd", filepath.Join(root, "etc", "link")))
	big := filepath.Join(root, "big")
	must(t, os.Mkdir(big, 0o755))
	for i := range 3000 {
		must(t, os.WriteFile(filepath.Join(big, fmt.Sprintf("file-%04d-with-a-longish-name", i)), nil, 0o600))
	}

	ents, err := s.ReadDir(ctx, "/etc")
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 3 || ents[0].Name != "link" || ents[1].Name != "passwd" || ents[2].Name != "sub" {
		t.Fatalf("entries %+v", ents)
	}
	if m := fs.FileMode(ents[0].Mode); m&fs.ModeSymlink == 0 || ents[0].Target != "/etc/passwd" {
		t.Errorf("link: mode %v target %q", m, ents[0].Target)
	}
	if m := fs.FileMode(ents[1].Mode); !m.IsRegular() || m.Perm() != 0o644 || ents[1].Size != 26 {
		t.Errorf("passwd: mode %v size %d", m, ents[1].Size)
	}
	if m := fs.FileMode(ents[2].Mode); !m.IsDir() || m.Perm() != 0o750 {
		t.Errorf("sub: mode %v", m)
	}

	// More entries than fit one frame.
	ents, err = s.ReadDir(ctx, "/big")
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 3000 || ents[2999].Name != "file-2999-with-a-longish-name" {
		t.Fatalf("got %d entries", len(ents))
	}

	// /out points at a host directory (absolute): inside the root it is
	// /<that path>, which does not exist. /up is ../../../.. = the root.
	if _, err := s.ReadDir(ctx, "/out"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("readdir /out (a link out of the root): %v, want not exist", err)
	}
	ents, err = s.ReadDir(ctx, "/up")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name == "secret" || e.Name == filepath.Base(outside) {
			t.Errorf("readdir /up shows %q from outside the root", e.Name)
		}
	}
	// Names and targets that are not UTF-8 arrive byte for byte.
	odd := "bad\xff\xfename"
	must(t, os.WriteFile(filepath.Join(root, "etc", "sub", odd), nil, 0o644))
	must(t, os.Symlink("tar\xffget", filepath.Join(root, "etc", "sub", "oddlink")))
	ents, err = s.ReadDir(ctx, "/etc/sub")
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 2 || ents[0].Name != odd || ents[1].Target != "tar\xffget" {
		t.Errorf("non-UTF-8 entries: %+v", ents)
	}
	if _, err := s.ReadDir(ctx, "/etc/passwd"); !errors.Is(err, syscall.ENOTDIR) {
		t.Errorf("readdir of a file: %v, want ENOTDIR", err)
	}
	if _, err := s.ReadDir(ctx, "etc"); err == nil {
		t.Error("readdir of a relative path succeeded")
	}
}
