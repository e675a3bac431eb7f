package testimages

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/imgbake/imgbake/internal/vmtest"
)

// aptRepoFixtures are two packages exercising what DebPackage offers.
var aptRepoFixtures = []DebPackage{
	{
		Name: "greeter", Version: "1:2.0-1", Depends: "greeter-data (>= 1.0)",
		Files: []DebFile{
			{Path: "/usr/bin/greeter", Content: "#!/bin/sh\necho hi\n", Mode: 0o755},
		},
		Postinst: "#!/bin/sh\nset -e\ntouch /var/lib/greeter-configured\n",
	},
	{
		Name: "greeter-data", Version: "1.0", Description: "greeting texts",
		Files: []DebFile{{Path: "/usr/share/greeter/hello.txt", Content: "hello\n"}},
	},
}

func httpGet(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v", url, resp.Status, err)
	}
	return body
}

// parseStanzas reads deb822 paragraphs (Packages, Release) into maps; a
// continuation line is appended to its field after a newline.
func parseStanzas(t *testing.T, data []byte) []map[string]string {
	t.Helper()
	var out []map[string]string
	cur := map[string]string{}
	last := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if len(cur) > 0 {
				out = append(out, cur)
			}
			cur, last = map[string]string{}, ""
		case line[0] == ' ' || line[0] == '\t':
			if last == "" {
				t.Fatalf("continuation line without a field: %q", line)
			}
			cur[last] += "\n" + strings.TrimSpace(line)
		default:
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				t.Fatalf("not a field: %q", line)
			}
			last = k
			cur[k] = strings.TrimSpace(v)
		}
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func md5Hex(b []byte) string    { s := md5.Sum(b); return hex.EncodeToString(s[:]) }
func sha256Hex(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func TestAptRepoIndexes(t *testing.T) {
	repo := ServeAptRepo(t, aptRepoFixtures...)
	if !strings.HasPrefix(repo.GuestURL, "http://10.0.2.2:") || !strings.HasPrefix(repo.HostURL, "http://127.0.0.1:") ||
		strings.TrimPrefix(repo.GuestURL, "http://10.0.2.2") != strings.TrimPrefix(repo.HostURL, "http://127.0.0.1") {
		t.Errorf("URLs: host %q, guest %q", repo.HostURL, repo.GuestURL)
	}
	if want := "deb [trusted=yes] " + repo.GuestURL + " ./"; repo.SourcesLine() != want {
		t.Errorf("SourcesLine() = %q, want %q", repo.SourcesLine(), want)
	}

	packages := httpGet(t, repo.HostURL+"Packages")
	stanzas := parseStanzas(t, packages)
	if len(stanzas) != len(aptRepoFixtures) {
		t.Fatalf("Packages has %d stanzas, want %d:\n%s", len(stanzas), len(aptRepoFixtures), packages)
	}
	byName := map[string]map[string]string{}
	for _, s := range stanzas {
		byName[s["Package"]] = s
	}
	for _, p := range aptRepoFixtures {
		s := byName[p.Name]
		if s == nil {
			t.Errorf("Packages lacks %s:\n%s", p.Name, packages)
			continue
		}
		for field, want := range map[string]string{"Version": p.Version, "Architecture": "all", "Depends": p.Depends,
			"Filename": "./" + p.FileName()} {
			if s[field] != want {
				t.Errorf("%s: %s = %q, want %q", p.Name, field, s[field], want)
			}
		}
		for _, field := range []string{"Maintainer", "Description", "Installed-Size", "Size", "MD5sum", "SHA256"} {
			if s[field] == "" {
				t.Errorf("%s: no %s field", p.Name, field)
			}
		}
		deb := httpGet(t, repo.HostURL+strings.TrimPrefix(s["Filename"], "./"))
		if s["Size"] != fmt.Sprint(len(deb)) || s["MD5sum"] != md5Hex(deb) || s["SHA256"] != sha256Hex(deb) {
			t.Errorf("%s: Size/MD5sum/SHA256 %s %s %s do not describe the served file (%d bytes)",
				p.Name, s["Size"], s["MD5sum"], s["SHA256"], len(deb))
		}
	}
	if aptRepoFixtures[0].FileName() != "greeter_2.0-1_all.deb" {
		t.Errorf("the epoch belongs in no file name: %s", aptRepoFixtures[0].FileName())
	}

	zr, err := gzip.NewReader(bytes.NewReader(httpGet(t, repo.HostURL+"Packages.gz")))
	must(t, err)
	unzipped, err := io.ReadAll(zr)
	must(t, err)
	if !bytes.Equal(unzipped, packages) {
		t.Errorf("Packages.gz does not hold Packages")
	}

	release := parseStanzas(t, httpGet(t, repo.HostURL+"Release"))
	if len(release) != 1 {
		t.Fatalf("Release: %d paragraphs", len(release))
	}
	gz := httpGet(t, repo.HostURL+"Packages.gz")
	for _, sum := range []struct {
		field string
		hash  func([]byte) string
	}{{"MD5Sum", md5Hex}, {"SHA256", sha256Hex}} {
		for name, data := range map[string][]byte{"Packages": packages, "Packages.gz": gz} {
			line := fmt.Sprintf("%s %d %s", sum.hash(data), len(data), name)
			if !strings.Contains("\n"+release[0][sum.field]+"\n", "\n"+line+"\n") {
				t.Errorf("Release %s lacks %q:\n%s", sum.field, line, release[0][sum.field])
			}
		}
	}
	if !repo.Requested("/Packages") || !repo.Requested("/Release") || repo.Requested("/nothing") {
		t.Errorf("request log: %v", repo.Requests())
	}
}

// TestAptRepoDebs checks the built packages with dpkg-deb itself.
func TestAptRepoDebs(t *testing.T) {
	repo := ServeAptRepo(t, aptRepoFixtures...)
	deb := filepath.Join(repo.Dir, aptRepoFixtures[0].FileName())
	info, err := exec.Command("dpkg-deb", "--info", deb).CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg-deb --info: %v\n%s", err, info)
	}
	for _, want := range []string{"Package: greeter", "Version: 1:2.0-1", "Architecture: all", "Depends: greeter-data (>= 1.0)", " postinst"} {
		if !bytes.Contains(info, []byte(want)) {
			t.Errorf("dpkg-deb --info lacks %q:\n%s", want, info)
		}
	}
	contents, err := exec.Command("dpkg-deb", "--contents", deb).CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg-deb --contents: %v\n%s", err, contents)
	}
	if !regexp.MustCompile(`(?m)^-rwxr-xr-x root/root\s+\d+ .* \./usr/bin/greeter$`).Match(contents) {
		t.Errorf("greeter is not an executable owned by root:\n%s", contents)
	}
	postinst, err := exec.Command("dpkg-deb", "--info", deb, "postinst").Output()
	must(t, err)
	if string(postinst) != aptRepoFixtures[0].Postinst {
		t.Errorf("postinst = %q", postinst)
	}
	dataDeb := filepath.Join(repo.Dir, aptRepoFixtures[1].FileName())
	extracted := t.TempDir()
	if out, err := exec.Command("dpkg-deb", "--extract", dataDeb, extracted).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb --extract: %v\n%s", err, out)
	}
	fi, err := os.Stat(filepath.Join(extracted, "usr/share/greeter/hello.txt"))
	must(t, err)
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("a file without a mode should be 0644, is %v", fi.Mode())
	}

	if _, err := buildDeb("dpkg-deb", t.TempDir(), t.TempDir(), DebPackage{Name: "bad", Version: "1",
		Files: []DebFile{{Path: "usr/bin/relative"}}}); err == nil || !strings.Contains(err.Error(), "absolute") {
		t.Errorf("a relative file path should be refused, got %v", err)
	}
}

// TestAptRepoWithApt points the host's apt-get, with private state
// directories, at the repository: it must accept the indexes and download
// a package whose hashes check out.
func TestAptRepoWithApt(t *testing.T) {
	aptGet := vmtest.LookPath(t, "apt-get", "apt")
	repo := ServeAptRepo(t, aptRepoFixtures...)
	dir := t.TempDir()
	for _, d := range []string{"etc/sources.list.d", "state/lists/partial", "cache/archives/partial", "download"} {
		must(t, os.MkdirAll(filepath.Join(dir, d), 0o755))
	}
	sources := filepath.Join(dir, "etc/sources.list")
	must(t, os.WriteFile(sources, []byte("deb [trusted=yes] "+repo.HostURL+" ./\n"), 0o644))
	opts := []string{
		"-o", "Dir::Etc::SourceList=" + sources,
		"-o", "Dir::Etc::SourceParts=" + filepath.Join(dir, "etc/sources.list.d"),
		"-o", "Dir::State=" + filepath.Join(dir, "state"),
		"-o", "Dir::Cache=" + filepath.Join(dir, "cache"),
		"-o", "Debug::NoLocking=1",
		"-o", "Acquire::http::Proxy=DIRECT", // the repository is on the loopback whatever the host's apt.conf says
		// The private directories belong to whoever runs the test; apt's
		// download sandbox user might not be able to write them.
		"-o", "APT::Sandbox::User=" + currentUser(),
	}
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(aptGet, append(opts, args...)...)
		cmd.Dir = filepath.Join(dir, "download")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("apt-get %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run("update", "--error-on=any")
	run("download", "greeter=1:2.0-1", "greeter-data")
	for _, p := range aptRepoFixtures {
		// apt-get download keeps the epoch, escaped, in the file name.
		got, err := os.ReadFile(filepath.Join(dir, "download", strings.Replace(p.FileName(), "_", "_"+epochOf(p.Version), 1)))
		must(t, err)
		want, err := os.ReadFile(filepath.Join(repo.Dir, p.FileName()))
		must(t, err)
		if !bytes.Equal(got, want) {
			t.Errorf("apt-get download %s: not the repository's file", p.Name)
		}
	}
}

func currentUser() string {
	if os.Geteuid() == 0 {
		return "root"
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return fmt.Sprint(os.Geteuid())
}

// epochOf is "E%3a" for a version "E:V", as apt-get download names files.
func epochOf(version string) string {
	if e, _, ok := strings.Cut(version, ":"); ok {
		return e + "%3a"
	}
	return ""
}
