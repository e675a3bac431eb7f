package fsops_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/fsops/fsopstest"
)

// TestRepo applies the repo operation on a fake image for each family:
// the files are written once (changed), then found as wanted (ok), and an
// image's own pacman.conf keeps its other sections.
func TestRepo(t *testing.T) {
	key := []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmDMEZQAAAB\n-----END PGP PUBLIC KEY BLOCK-----\n")
	tests := []struct {
		manager string
		spec    fsops.RepoSpec
		files   []string // written, relative to the root
		command string   // a command the first apply ran; "" for none
	}{
		{"apt", fsops.RepoSpec{Name: "ex", URL: "https://h/debian", Suite: "bookworm", Key: key},
			[]string{"etc/apt/sources.list.d/ex.sources", "etc/apt/keyrings/ex.asc"}, ""},
		{"dnf", fsops.RepoSpec{Name: "ex", URL: "https://h/fedora", Key: key},
			[]string{"etc/yum.repos.d/ex.repo", "etc/pki/rpm-gpg/RPM-GPG-KEY-ex"}, ""},
		{"zypper", fsops.RepoSpec{Name: "ex", URL: "https://h/suse", Key: key},
			[]string{"etc/zypp/repos.d/ex.repo", "etc/pki/rpm-gpg/RPM-GPG-KEY-ex"}, "rpm --import /etc/pki/rpm-gpg/RPM-GPG-KEY-ex"},
		{"pacman", fsops.RepoSpec{Name: "ex", URL: "https://h/$repo/os/$arch", Trusted: true},
			[]string{"etc/pacman.conf"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.manager, func(t *testing.T) {
			root := t.TempDir()
			if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(root, "etc/pacman.conf"), []byte("[options]\nSigLevel = Required\n\n[core]\nInclude = /etc/pacman.d/mirrorlist\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			s := fsopstest.New(t, root, func(fsopstest.Call) fsopstest.Reply { return fsopstest.Reply{} })
			ctx := context.Background()
			res, err := fsops.Repo(ctx, s, tc.manager, tc.spec)
			if err != nil || !res.Changed {
				t.Fatalf("first Repo = %+v, %v; want changed", res, err)
			}
			for _, f := range tc.files {
				b, err := os.ReadFile(filepath.Join(root, f))
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(string(b), tc.spec.URL) && !strings.Contains(string(b), "PGP PUBLIC KEY") {
					t.Errorf("%s = %q", f, b)
				}
				if fi, err := os.Stat(filepath.Join(root, f)); err != nil || fi.Mode().Perm() != 0o644 {
					t.Errorf("%s: %v, %v; want mode 0644", f, fi.Mode(), err)
				}
			}
			var ran []string
			for _, c := range s.Calls() {
				ran = append(ran, c.Line())
			}
			if tc.command != "" && (len(ran) == 0 || ran[0] != tc.command) || tc.command == "" && len(ran) > 0 {
				t.Errorf("ran %q, want %q", ran, tc.command)
			}
			res, err = fsops.Repo(ctx, s, tc.manager, tc.spec)
			if err != nil || res.Changed {
				t.Errorf("second Repo = %+v, %v; want ok", res, err)
			}
			if tc.manager == "pacman" {
				b, _ := os.ReadFile(filepath.Join(root, "etc/pacman.conf"))
				if want := "[core]\nInclude = /etc/pacman.d/mirrorlist\n\n[ex]\nSigLevel = Never\nServer = https://h/$repo/os/$arch\n"; !strings.HasSuffix(string(b), want) {
					t.Errorf("pacman.conf = %q, want it to end with %q", b, want)
				}
			}
		})
	}
	t.Run("pacman key refused", func(t *testing.T) {
		root := t.TempDir()
		s := fsopstest.New(t, root, nil)
		if _, err := fsops.Repo(context.Background(), s, "pacman", fsops.RepoSpec{Name: "ex", URL: "https://h/", Key: key}); err == nil || !strings.Contains(err.Error(), "pacman-key") {
			t.Errorf("err = %v, want one naming pacman-key", err)
		}
	})
}
