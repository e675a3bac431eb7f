package main

import (
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// runMake runs make in the checkout: these tests build the real artifacts.
func runMake(t *testing.T, args ...string) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: builds imgbake with make")
	}
	mk, err := exec.LookPath("make")
	if err != nil {
		t.Skip("make not installed")
	}
	cmd := exec.Command(mk, append([]string{"-C", repoRoot(t)}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// gitVersion is the version the Makefile gives the binary.
func gitVersion(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("bash", filepath.Join(repoRoot(t), "scripts/version.sh")).Output()
	if err != nil {
		t.Fatalf("scripts/version.sh: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// readmeLayout returns the install tree the README documents: paths under
// PREFIX, a trailing slash for a directory whose files all belong.
func readmeLayout(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "README.md"))
	must(t, err)
	m := regexp.MustCompile("(?s)<!-- install layout: [^\n]*-->\n```\n(.*?)```\n<!-- end of install layout -->").FindSubmatch(b)
	if m == nil {
		t.Fatal("README.md has no install layout block")
	}
	var paths []string
	for _, line := range strings.Split(strings.TrimSpace(string(m[1])), "\n") {
		p, ok := strings.CutPrefix(strings.Fields(line)[0], "PREFIX/")
		if !ok {
			t.Fatalf("README install layout: %q does not start with PREFIX/", line)
		}
		paths = append(paths, p)
	}
	return paths
}

// filesUnder lists the regular files under dir, relative to it, with their
// modes.
func filesUnder(t *testing.T, dir string) map[string]fs.FileMode {
	t.Helper()
	files := map[string]fs.FileMode{}
	must(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		files[filepath.ToSlash(rel)] = fi.Mode()
		return nil
	}))
	return files
}

// checkLayout compares the files of an install tree with the documented
// layout: every documented path is there, nothing else is.
func checkLayout(t *testing.T, files map[string]fs.FileMode, layout []string) {
	t.Helper()
	for _, want := range layout {
		found := false
		for f := range files {
			found = found || f == want || (strings.HasSuffix(want, "/") && strings.HasPrefix(f, want))
		}
		if !found {
			t.Errorf("the README's %s is not installed", want)
		}
	}
	for f := range files {
		if !slices.ContainsFunc(layout, func(want string) bool {
			return f == want || (strings.HasSuffix(want, "/") && strings.HasPrefix(f, want))
		}) {
			t.Errorf("installed %s is not in the README's layout", f)
		}
	}
}

// checkInstalledTools runs what an install put in root (PREFIX prefix
// inside it): the binary reports the git version, the man pages render,
// the bash completion loads.
func checkInstalledTools(t *testing.T, root, prefix, bashCompletion string, man ...string) {
	t.Helper()
	bin := filepath.Join(root, prefix, "bin/imgbake")
	cmd := exec.Command(bin, "version", "--json")
	cmd.Env = append(os.Environ(), "IMGBAKE_ACCEL=tcg")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s version --json: %v", bin, err)
	}
	var v struct{ Version, Commit string }
	must(t, json.Unmarshal(out, &v))
	if v.Version != gitVersion(t) || len(v.Commit) < 40 {
		t.Errorf("installed imgbake says version %q commit %q, want %q and the git commit", v.Version, v.Commit, gitVersion(t))
	}
	if out, err := exec.Command(bin, "steps").Output(); err != nil || !strings.Contains(string(out), "- write:") {
		t.Errorf("%s steps: %v\n%s", bin, err, out)
	}
	for _, page := range man {
		if text := renderMan(t, filepath.Join(root, prefix, page)); !strings.Contains(text, "imgbake") {
			t.Errorf("%s renders as:\n%s", page, text)
		}
	}
	script := filepath.Join(root, prefix, bashCompletion)
	if out, err := exec.Command("bash", "-n", script).CombinedOutput(); err != nil {
		t.Errorf("bash -n %s: %v\n%s", script, err, out)
	}
	out, err = exec.Command("bash", "--norc", "--noprofile", "-c", `source "$1" && complete -p imgbake`, "bash", script).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "-F _imgbake imgbake") {
		t.Errorf("sourcing %s then complete -p imgbake: %v\n%s", script, err, out)
	}
}

// TestMakeInstallLayout: make install DESTDIR=... lays out the README's
// tree with the right modes, what it installed works, and make uninstall
// takes all of it away again.
func TestMakeInstallLayout(t *testing.T) {
	dest := t.TempDir()
	const prefix = "/opt/imgbake-test"
	runMake(t, "install", "DESTDIR="+dest, "PREFIX="+prefix)
	files := filesUnder(t, filepath.Join(dest, prefix))
	if outside := filesUnder(t, dest); len(outside) != len(files) {
		t.Errorf("make install wrote outside PREFIX: %d files in DESTDIR, %d under PREFIX", len(outside), len(files))
	}
	checkLayout(t, files, readmeLayout(t))
	for f, mode := range files {
		want := fs.FileMode(0o644)
		if f == "bin/imgbake" {
			want = 0o755
		}
		if mode.Perm() != want {
			t.Errorf("%s: mode %v, want %v", f, mode.Perm(), want)
		}
	}
	checkInstalledTools(t, dest, prefix, "share/bash-completion/completions/imgbake",
		"share/man/man1/imgbake.1", "share/man/man5/imgbake-recipe.5")

	runMake(t, "uninstall", "DESTDIR="+dest, "PREFIX="+prefix)
	if left := filesUnder(t, dest); len(left) != 0 {
		t.Errorf("make uninstall left %d files: %v", len(left), left)
	}
}

// TestVersionScript: git describe becomes a version Debian accepts and
// orders as releases should.
func TestVersionScript(t *testing.T) {
	script := filepath.Join(repoRoot(t), "scripts/version.sh")
	tests := []struct{ describe, count, want string }{
		{"v1.2.0", "40", "1.2.0"},
		{"v1.2.0-5-g1234abc", "45", "1.2.0+5.g1234abc"},
		{"v1.2.0-5-g1234abc-dirty", "45", "1.2.0+5.g1234abc.dirty"},
		{"78457c6", "183", "0.1.0~git183.g78457c6"},
		{"78457c6-dirty", "183", "0.1.0~git183.g78457c6.dirty"},
	}
	dpkg, dpkgErr := exec.LookPath("dpkg")
	for _, tt := range tests {
		out, err := exec.Command("bash", script, tt.describe, tt.count).Output()
		if got := strings.TrimSpace(string(out)); err != nil || got != tt.want {
			t.Errorf("version.sh %s %s = %q, %v; want %q", tt.describe, tt.count, got, err, tt.want)
		}
		if dpkgErr == nil {
			if out, err := exec.Command(dpkg, "--validate-version", tt.want).CombinedOutput(); err != nil {
				t.Errorf("dpkg refuses %q: %s", tt.want, out)
			}
		}
	}
	if err := exec.Command("bash", script, "release-x", "1").Run(); err == nil {
		t.Error("version.sh accepted a tag that is no version")
	}
	if dpkgErr == nil {
		// Builds before the first tag sort before it, later ones after.
		for _, order := range [][2]string{{"0.1.0~git183.g78457c6", "0.1.0"}, {"1.2.0", "1.2.0+5.g1234abc"}} {
			if err := exec.Command(dpkg, "--compare-versions", order[0], "lt", order[1]).Run(); err != nil {
				t.Errorf("dpkg does not order %s before %s", order[0], order[1])
			}
		}
	}
}
