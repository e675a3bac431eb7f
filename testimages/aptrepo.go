package testimages

import (
	"bytes"
	"compress/gzip"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/imgbake/imgbake/internal/vmtest"
)

// A local APT repository, so that package steps can be tested without the
// Debian archive (hermetic tests: no DNS, no internet). The packages are
// real .deb files built with the host's dpkg-deb; the repository is "flat"
// (one directory holding the .debs, Packages, Packages.gz and Release) and
// served over HTTP on the host's loopback, which the appliance's QEMU
// user-mode network reaches as 10.0.2.2.

// GuestHostAddr is the host as the appliance's user-mode network sees it:
// QEMU forwards connections to it to the host's 127.0.0.1.
const GuestHostAddr = "10.0.2.2"

// DebPackage describes a package to build. Its architecture is "all".
type DebPackage struct {
	Name    string
	Version string
	// Depends is the Depends field as in a control file ("a (>= 1), b | c"); may be empty.
	Depends string
	// Description is the synopsis (one line); empty means a generic one.
	Description string
	Files       []DebFile
	// Postinst, if not empty, is the package's postinst maintainer script.
	Postinst string
}

// DebFile is one file a DebPackage installs.
type DebFile struct {
	Path    string // absolute path in the installed system
	Content string
	Mode    fs.FileMode // permission bits; 0 means 0644
}

// AptRepo is a served local repository (see ServeAptRepo).
type AptRepo struct {
	// Dir is the repository directory: the .debs, Packages, Packages.gz, Release.
	Dir string
	// HostURL is the repository's URL from the host (http://127.0.0.1:PORT/).
	HostURL string
	// GuestURL is the repository's URL from inside the appliance (http://10.0.2.2:PORT/).
	GuestURL string

	mu       sync.Mutex
	requests []string
}

// SourcesLine is the one-line-style APT source for the repository as the
// appliance sees it. trusted=yes: the Release file is not signed.
func (r *AptRepo) SourcesLine() string {
	return "deb [trusted=yes] " + r.GuestURL + " ./"
}

// Requests returns the paths requested so far, in order (e.g. "/Release",
// "/hello_1.0_all.deb"), so a test can tell that its packages came from here.
func (r *AptRepo) Requests() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.requests...)
}

// Requested reports whether path was requested (see Requests).
func (r *AptRepo) Requested(path string) bool {
	for _, p := range r.Requests() {
		if p == path {
			return true
		}
	}
	return false
}

// ServeAptRepo builds pkgs with dpkg-deb in a t.TempDir(), writes the
// repository's indexes and serves it on 127.0.0.1 until the test ends.
// A missing dpkg-deb is a missing prerequisite (see internal/vmtest).
func ServeAptRepo(t testing.TB, pkgs ...DebPackage) *AptRepo {
	t.Helper()
	dpkgDeb := vmtest.LookPath(t, "dpkg-deb", "dpkg")
	dir := t.TempDir()
	var stanzas []string
	for _, p := range pkgs {
		stanza, err := buildDeb(dpkgDeb, t.TempDir(), dir, p)
		if err != nil {
			t.Fatalf("testimages: apt repository: %v", err)
		}
		stanzas = append(stanzas, stanza)
	}
	if err := writeAptIndexes(dir, stanzas); err != nil {
		t.Fatalf("testimages: apt repository: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testimages: apt repository: listening on the loopback: %v", err)
	}
	r := &AptRepo{Dir: dir}
	files := http.FileServer(http.Dir(dir))
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		// Cleaned: apt asks for a flat repository's "./" files as "/./NAME".
		r.requests = append(r.requests, filepath.Clean(req.URL.Path))
		r.mu.Unlock()
		files.ServeHTTP(w, req)
	}))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	port := ln.Addr().(*net.TCPAddr).Port
	r.HostURL = fmt.Sprintf("http://127.0.0.1:%d/", port)
	r.GuestURL = fmt.Sprintf("http://%s:%d/", GuestHostAddr, port)
	return r
}

// FileName is the name of p's .deb in the repository (the epoch, whose
// colon does not belong in a file name, left out, as Debian does).
func (p DebPackage) FileName() string {
	v := p.Version
	if i := strings.IndexByte(v, ':'); i >= 0 {
		v = v[i+1:]
	}
	return fmt.Sprintf("%s_%s_all.deb", p.Name, v)
}

// buildDeb stages p under work, builds its .deb into repoDir and returns
// its Packages stanza (without the trailing blank line).
func buildDeb(dpkgDeb, work, repoDir string, p DebPackage) (string, error) {
	if p.Name == "" || p.Version == "" {
		return "", fmt.Errorf("package %q: name and version are required", p.Name)
	}
	root := filepath.Join(work, p.Name)
	if err := os.MkdirAll(filepath.Join(root, "DEBIAN"), 0o755); err != nil {
		return "", err
	}
	var installedBytes int64
	for _, f := range p.Files {
		if !filepath.IsAbs(f.Path) || filepath.Clean(f.Path) != f.Path || f.Path == "/" {
			return "", fmt.Errorf("package %s: file path %q must be absolute and clean", p.Name, f.Path)
		}
		mode := f.Mode.Perm()
		if mode == 0 {
			mode = 0o644
		}
		dst := filepath.Join(root, filepath.FromSlash(f.Path))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return "", fmt.Errorf("package %s: %w", p.Name, err)
		}
		if err := os.WriteFile(dst, []byte(f.Content), mode); err != nil {
			return "", fmt.Errorf("package %s: %w", p.Name, err)
		}
		// WriteFile's mode is filtered by the umask; the package wants it exact.
		if err := os.Chmod(dst, mode); err != nil {
			return "", fmt.Errorf("package %s: %w", p.Name, err)
		}
		installedBytes += int64(len(f.Content))
	}
	if p.Postinst != "" {
		script := filepath.Join(root, "DEBIAN", "postinst")
		if err := os.WriteFile(script, []byte(p.Postinst), 0o755); err != nil {
			return "", fmt.Errorf("package %s: %w", p.Name, err)
		}
		if err := os.Chmod(script, 0o755); err != nil {
			return "", fmt.Errorf("package %s: %w", p.Name, err)
		}
	}
	control := controlFields(p, (installedBytes+1023)/1024)
	if err := os.WriteFile(filepath.Join(root, "DEBIAN", "control"), []byte(control), 0o644); err != nil {
		return "", fmt.Errorf("package %s: %w", p.Name, err)
	}
	name := p.FileName()
	out := filepath.Join(repoDir, name)
	// -Zgzip: quick to build, and every dpkg reads it.
	cmd := exec.Command(dpkgDeb, "--build", "--root-owner-group", "-Zgzip", root, out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("package %s: dpkg-deb --build: %v: %s", p.Name, err, bytes.TrimSpace(msg))
	}
	deb, err := os.ReadFile(out)
	if err != nil {
		return "", fmt.Errorf("package %s: %w", p.Name, err)
	}
	md5sum := md5.Sum(deb)
	sha := sha256.Sum256(deb)
	return control + fmt.Sprintf("Filename: ./%s\nSize: %d\nMD5sum: %s\nSHA256: %s\n",
		name, len(deb), hex.EncodeToString(md5sum[:]), hex.EncodeToString(sha[:])), nil
}

// controlFields is p's DEBIAN/control, which is also the start of its
// Packages stanza.
func controlFields(p DebPackage, installedKiB int64) string {
	desc := p.Description
	if desc == "" {
		desc = "imgbake test fixture " + p.Name
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Package: %s\nVersion: %s\nArchitecture: all\n", p.Name, p.Version)
	b.WriteString("Maintainer: imgbake tests <imgbake-tests@localhost>\n")
	fmt.Fprintf(&b, "Installed-Size: %d\n", installedKiB)
	if p.Depends != "" {
		fmt.Fprintf(&b, "Depends: %s\n", p.Depends)
	}
	b.WriteString("Section: misc\nPriority: optional\n")
	fmt.Fprintf(&b, "Description: %s\n", desc)
	return b.String()
}

// repoFile is one index file of the repository.
type repoFile struct {
	name string
	data []byte
}

// writeAptIndexes writes Packages, Packages.gz and Release into dir.
func writeAptIndexes(dir string, stanzas []string) error {
	sort.Strings(stanzas)
	packages := []byte(strings.Join(stanzas, "\n"))
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write(packages); err != nil {
		return fmt.Errorf("compressing Packages: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("compressing Packages: %w", err)
	}
	indexes := []repoFile{{"Packages", packages}, {"Packages.gz", gz.Bytes()}}
	// A fixed date in the past: apt rejects a Release dated in the future,
	// and the appliance's clock may lag the host's a little.
	release := "Origin: imgbake-tests\nLabel: imgbake-tests\nSuite: imgbake-tests\nCodename: imgbake-tests\n" +
		"Architectures: all amd64\nDate: Mon, 01 Jan 2024 00:00:00 UTC\n" +
		"Description: local repository of imgbake's tests\n"
	for _, h := range []struct {
		field string
		sum   func([]byte) string
	}{
		{"MD5Sum", func(b []byte) string { s := md5.Sum(b); return hex.EncodeToString(s[:]) }},
		{"SHA256", func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }},
	} {
		release += h.field + ":\n"
		for _, ix := range indexes {
			release += fmt.Sprintf(" %s %d %s\n", h.sum(ix.data), len(ix.data), ix.name)
		}
	}
	for _, f := range append(indexes, repoFile{"Release", []byte(release)}) {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.data, 0o644); err != nil {
			return err
		}
	}
	return nil
}
