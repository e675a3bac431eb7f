package main

import (
	"crypto/md5"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/imgbake/imgbake/internal/vmtest"
)

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestParseDepends(t *testing.T) {
	got := parseDepends("libc6 (>= 2.34), media-types | mime-support,python3:any (>= 3.9~), foo [amd64] <!nocheck>, , bar:amd64")
	want := [][]string{{"libc6"}, {"media-types", "mime-support"}, {"python3"}, {"foo"}, {"bar"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseDepends = %q, want %q", got, want)
	}
	if got := parseDepends(""); got != nil {
		t.Errorf("parseDepends(\"\") = %q", got)
	}
}

// dbLine is one queryFormat line.
func dbLine(name, status, provides, predepends, depends string) string {
	return strings.Join([]string{name, name, "amd64", "1.0", status, provides, predepends, depends}, "\t") + "\n"
}

func mustParseDatabase(t *testing.T, lines ...string) *database {
	t.Helper()
	db, err := parseDatabase([]byte(strings.Join(lines, "")))
	must(t, err)
	return db
}

func TestParseDatabase(t *testing.T) {
	db := mustParseDatabase(t,
		dbLine("libfoo1", "ii ", "libfoo-abi (= 1), foo-virtual", "", "libc6 (>= 2.36)"),
		dbLine("gone", "rc ", "", "", ""),
		dbLine("other", "ii ", "foo-virtual", "", ""))
	if db.pkgs["gone"] != nil {
		t.Error("a package in state rc counts as installed")
	}
	if p := db.pkgs["libfoo1"]; p == nil || p.Depends != "libc6 (>= 2.36)" || !reflect.DeepEqual(p.Provides, []string{"libfoo-abi", "foo-virtual"}) {
		t.Errorf("libfoo1 = %+v", p)
	}
	if got := db.providers["foo-virtual"]; !reflect.DeepEqual(got, []string{"libfoo1", "other"}) {
		t.Errorf("providers of foo-virtual = %q", got)
	}
	if _, err := parseDatabase([]byte("too\tfew\n")); err == nil {
		t.Error("a malformed line should be an error")
	}
	if _, err := parseDatabase([]byte(dbLine("twice", "ii", "", "", "") + dbLine("twice", "ii", "", "", ""))); err == nil {
		t.Error("a package installed twice (two architectures) should be an error")
	}
}

func TestClosure(t *testing.T) {
	host := mustParseDatabase(t,
		dbLine("python3", "ii", "", "python3-minimal (= 3.11.2-1)", "python3.11 (>= 3.11.2), libpython3-stdlib (= 3.11.2-1)"),
		dbLine("python3-minimal", "ii", "", "python3.11-minimal (>= 3.11.2-1~)", "dpkg (>= 1.13.20)"),
		dbLine("python3.11-minimal", "ii", "", "libc6 (>= 2.35)", "libexpat1 (>= 2.1), zlib1g"),
		dbLine("python3.11", "ii", "", "", "python3.11-minimal, media-types | mime-support, libpython3.11-stdlib"),
		dbLine("libpython3-stdlib", "ii", "", "", "libpython3.11-stdlib:any"),
		dbLine("libpython3.11-stdlib", "ii", "", "", "libc6, readline-virtual, python3.11 (= 3.11.2)"),
		dbLine("media-types", "ii", "mime-support", "", ""),
		dbLine("libreadline8", "ii", "readline-virtual", "", "libc6"),
		dbLine("libexpat1", "ii", "", "", "libc6"),
		dbLine("zlib1g", "ii", "", "", "libc6"),
		dbLine("libc6", "ii", "", "", ""),
		dbLine("dpkg", "ii", "", "", ""),
		dbLine("unrelated", "ii", "", "", ""))
	// The root has dpkg, libc6 and zlib1g, and mime-support (the second
	// alternative of python3.11's media-types | mime-support).
	target := mustParseDatabase(t,
		dbLine("dpkg", "ii", "", "", ""), dbLine("libc6", "ii", "", "", ""), dbLine("zlib1g", "ii", "", "", ""),
		dbLine("mime-support", "ii", "", "", ""))
	pkgs, deps, err := closure(host, target, []string{"python3"})
	must(t, err)
	var names []string
	for _, p := range pkgs {
		names = append(names, p.Name)
	}
	want := []string{"libexpat1", "libpython3-stdlib", "libpython3.11-stdlib", "libreadline8", "python3", "python3-minimal", "python3.11", "python3.11-minimal"}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("closure = %q, want %q", names, want)
	}
	if got := deps["libpython3.11-stdlib"]; !reflect.DeepEqual(got, []string{"libreadline8", "python3.11"}) {
		t.Errorf("libpython3.11-stdlib's dependencies in the set = %q (the virtual readline-virtual is libreadline8)", got)
	}

	order := installOrder(names, deps)
	pos := map[string]int{}
	for i, g := range order {
		for _, n := range g {
			pos[n] = i
		}
	}
	for p, ds := range deps {
		for _, d := range ds {
			if pos[d] > pos[p] {
				t.Errorf("%s is installed in batch %d, after %s (batch %d) which depends on it: %q", d, pos[d], p, pos[p], order)
			}
		}
	}
	// python3.11 and libpython3.11-stdlib depend on each other: one batch.
	if pos["python3.11"] != pos["libpython3.11-stdlib"] {
		t.Errorf("a dependency cycle should share a batch: %q", order)
	}
	if pos["python3.11-minimal"] >= pos["python3-minimal"] || pos["python3-minimal"] >= pos["python3"] {
		t.Errorf("Pre-Depends must come in earlier batches: %q", order)
	}

	if pkgs, _, err := closure(host, host, []string{"python3"}); err != nil || len(pkgs) != 0 {
		t.Errorf("a root that has everything needs nothing: %v, %v", pkgs, err)
	}
	if _, _, err := closure(host, target, []string{"nosuch"}); err == nil || !strings.Contains(err.Error(), "nosuch is not installed on the host") {
		t.Errorf("an unknown package: %v", err)
	}
	broken := mustParseDatabase(t, dbLine("a", "ii", "", "", "b | c"))
	if _, _, err := closure(broken, target, []string{"a"}); err == nil || !strings.Contains(err.Error(), "a depends on b | c") {
		t.Errorf("an unsatisfiable dependency: %v", err)
	}
}

func TestControlFromStatus(t *testing.T) {
	status := "Package: libpython3.11-minimal\nStatus: install ok installed\nPriority: optional\n" +
		"Architecture: amd64\nVersion: 3.11.2-6\nConffiles:\n /etc/python3.11/sitecustomize.py d6b2\n" +
		"Description: Minimal subset\n This package contains\n .\n more.\n"
	want := "Package: libpython3.11-minimal\nPriority: optional\nArchitecture: amd64\nVersion: 3.11.2-6\n" +
		"Description: Minimal subset\n This package contains\n .\n more.\n"
	if got := string(controlFromStatus([]byte(status))); got != want {
		t.Errorf("controlFromStatus =\n%s\nwant\n%s", got, want)
	}
}

func TestReadOSRelease(t *testing.T) {
	root := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(root, "etc"), 0o755))
	must(t, os.MkdirAll(filepath.Join(root, "usr/lib"), 0o755))
	must(t, os.WriteFile(filepath.Join(root, "usr/lib/os-release"), []byte("ID=debian\nVERSION_CODENAME=\"bookworm\"\n"), 0o644))
	// An absolute symlink is the root's, not the host's.
	must(t, os.Symlink("/usr/lib/os-release", filepath.Join(root, "etc/os-release")))
	data, err := readOSRelease(root)
	must(t, err)
	if got := osReleaseField(data, "VERSION_CODENAME"); got != "bookworm" {
		t.Errorf("VERSION_CODENAME = %q", got)
	}
	must(t, os.Remove(filepath.Join(root, "etc/os-release")))
	must(t, os.Symlink("../../../../../etc/passwd", filepath.Join(root, "etc/os-release")))
	if _, err := readOSRelease(root); err == nil {
		t.Error("an os-release symlink leaving the root should be refused")
	}
}

func TestCheckWorkDir(t *testing.T) {
	empty := t.TempDir()
	if got, err := checkWorkDir(empty); err != nil || got != empty {
		t.Errorf("checkWorkDir(empty) = %q, %v", got, err)
	}
	full := t.TempDir()
	must(t, os.WriteFile(filepath.Join(full, "x"), nil, 0o644))
	if _, err := checkWorkDir(full); err == nil {
		t.Error("a non-empty work directory should be refused")
	}
	if _, err := checkWorkDir("/"); err == nil {
		t.Error("/ should be refused")
	}
}

// TestStageFiles stages a small fake "host" tree laid out like a merged
// /usr system.
func TestStageFiles(t *testing.T) {
	src := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(src, "usr/lib/pkg"), 0o755))
	must(t, os.Symlink("usr/lib", filepath.Join(src, "lib")))
	must(t, os.WriteFile(filepath.Join(src, "usr/lib/pkg/tool"), []byte("#!/bin/sh\n"), 0o755))
	must(t, syscall.Chmod(filepath.Join(src, "usr/lib/pkg/tool"), 0o4755))
	must(t, os.Symlink("tool", filepath.Join(src, "usr/lib/pkg/alias")))
	paths := []string{
		src + "/lib", src + "/lib/pkg", src + "/lib/pkg/tool", // through the symlinked /lib, as dpkg lists them
		src + "/usr/lib/pkg/alias", src + "/usr/lib/pkg/missing",
	}
	stage := t.TempDir()
	s := &stager{base: stage}
	sums, missing, err := s.stageFiles(paths)
	must(t, err)
	if missing != 1 {
		t.Errorf("missing = %d, want 1", missing)
	}
	toolSum := md5.Sum([]byte("#!/bin/sh\n"))
	if want := hex.EncodeToString(toolSum[:]) + "  " + strings.TrimPrefix(src, "/") + "/lib/pkg/tool\n"; len(sums) != 1 || sums[0] != want {
		t.Errorf("md5sums = %q, want %q", sums, want)
	}
	if fi, err := os.Lstat(stage + src + "/lib"); err != nil || !fi.IsDir() {
		t.Errorf("a symlink with listed children should be staged as a directory: %v %v", fi, err)
	}
	fi, err := os.Lstat(stage + src + "/lib/pkg/tool")
	must(t, err)
	if fi.Mode()&os.ModeSetuid == 0 || fi.Mode().Perm() != 0o755 {
		t.Errorf("tool's mode = %v, want setuid 0755", fi.Mode())
	}
	if target, err := os.Readlink(stage + src + "/usr/lib/pkg/alias"); err != nil || target != "tool" {
		t.Errorf("alias = %q, %v", target, err)
	}
	// Nothing is written through a symlink staged before.
	s2 := &stager{base: t.TempDir()}
	_, _, err = s2.stageFiles([]string{src + "/usr/lib/pkg/alias", src + "/usr/lib/pkg/alias/x"})
	if err == nil {
		t.Error("a path below a staged symlink should be an error")
	}
	if _, err := s.target("/"); err == nil {
		t.Error("target(/) should be refused")
	}
}

// TestRepackBaseFiles rebuilds the host's base-files (every Debian has it:
// conffiles, maintainer scripts, symlinks, merged-/usr directories) and
// checks the .deb with dpkg-deb.
func TestRepackBaseFiles(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the staged files keep the host's owners")
	}
	vmtest.LookPath(t, "dpkg-deb", "dpkg")
	host, err := queryDatabase(hostAdminDir)
	must(t, err)
	p := host.pkgs["base-files"]
	if p == nil {
		t.Fatal("base-files is not installed on this host")
	}
	work := t.TempDir()
	deb, err := repack(p, filepath.Join(work, "stage"), work)
	must(t, err)
	fields, err := exec.Command("dpkg-deb", "--field", deb, "Package", "Version", "Status").Output()
	must(t, err)
	if want := "Package: base-files\nVersion: " + p.Version + "\n"; string(fields) != want {
		t.Errorf("control fields = %q, want %q (and no Status)", fields, want)
	}
	info, err := exec.Command("dpkg-deb", "--info", deb).Output()
	must(t, err)
	for _, want := range []string{" conffiles", " md5sums", " postinst"} {
		if !strings.Contains(string(info), want) {
			t.Errorf("dpkg-deb --info lacks %q:\n%s", want, info)
		}
	}
	contents, err := exec.Command("dpkg-deb", "--contents", deb).Output()
	must(t, err)
	for _, line := range strings.Split(string(contents), "\n") {
		if strings.HasSuffix(line, " ./bin/") || strings.HasSuffix(line, " ./lib/") {
			if !strings.HasPrefix(line, "d") {
				t.Errorf("a merged-/usr alias must be a directory in the package: %s", line)
			}
		}
	}
	if !strings.Contains(string(contents), "./etc/os-release -> ../usr/lib/os-release") {
		t.Errorf("the /etc/os-release symlink is missing:\n%s", contents)
	}
}
