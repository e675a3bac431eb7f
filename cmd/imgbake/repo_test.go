package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgbake/imgbake/internal/vmtest"
	"github.com/imgbake/imgbake/testimages"
)

// TestRepoStepApt: the repo step adds a signed local APT repository as
// Debian keeps one (deb822 .sources, Signed-By a keyring in
// /etc/apt/keyrings), the image's own apt and gpgv then install from it;
// when: picks the family; read back with debugfs.
func TestRepoStepApt(t *testing.T) {
	vmTests(t)
	gpg := vmtest.LookPath(t, "gpg", "gnupg")
	repo := testAptRepo(t)
	key := signAptRepo(t, gpg, repo.Dir)
	recipe := writeRecipe(t, fmt.Sprintf(`steps:
  - name: no Debian sources (the appliance reaches no archive)
    run: rm -f /etc/apt/sources.list /etc/apt/sources.list.d/*
  - repo: {name: imgbake-tests, url: "%[1]s", key: ./imgbake-tests.asc}
    when: os.family == "debian"
  - repo: {name: imgbake-tests, url: "%[1]s", trusted: true}
    when: os.family != "debian"
  - repo: {name: imgbake-tests, url: "%[1]s", key: ./imgbake-tests.asc}
    when: os.family == "debian"
  - install: [hello]
`, repo.GuestURL))
	must(t, os.WriteFile(filepath.Join(filepath.Dir(recipe), "imgbake-tests.asc"), key, 0o644))
	disk := testimages.Fresh(t, testimages.NoPart)
	r := imgbake(t, "run", "-a", disk, recipe)
	if r.code != 0 {
		t.Fatalf("%s", r)
	}
	status := stepStatuses(t, r.stdout)
	for i, want := range []string{"changed", "changed", "skipped", "ok", "changed"} {
		if status[i+1] != want {
			t.Errorf("step %d: %s, want %s\n%s", i+1, status[i+1], want, r.stdout)
		}
	}
	if !repo.Requested("/InRelease") || !repo.Requested(debPath(helloFixture)) {
		t.Errorf("apt did not fetch the signed InRelease and hello from the repository: %v", repo.Requests())
	}
	files, err := testimages.ReadFiles(t, disk, "raw", 0, "/etc/apt/sources.list.d/imgbake-tests.sources",
		"/etc/apt/keyrings/imgbake-tests.asc", "/usr/bin/hello")
	must(t, err)
	wantSources := "Types: deb\nURIs: " + repo.GuestURL + "\nSuites: ./\nSigned-By: /etc/apt/keyrings/imgbake-tests.asc\n"
	if got := string(files["/etc/apt/sources.list.d/imgbake-tests.sources"]); !strings.HasSuffix(got, wantSources) {
		t.Errorf("imgbake-tests.sources = %q, want it to end with %q", got, wantSources)
	}
	if string(files["/etc/apt/keyrings/imgbake-tests.asc"]) != string(key) {
		t.Errorf("the keyring is not the key: %q", files["/etc/apt/keyrings/imgbake-tests.asc"])
	}
	if !strings.Contains(string(files["/usr/bin/hello"]), "imgbake test fixture") {
		t.Errorf("/usr/bin/hello = %q", files["/usr/bin/hello"])
	}
}

// signAptRepo makes a signing key in a private GNUPGHOME, writes dir's
// InRelease (Release clearsigned with it) and returns the armored public
// key. The key and signature are dated 2024-01-01, like the Release file,
// so that a guest clock a little behind the host's sees nothing from the
// future.
func signAptRepo(t *testing.T, gpg, dir string) []byte {
	t.Helper()
	home := t.TempDir()
	must(t, os.Chmod(home, 0o700))
	t.Cleanup(func() {
		// gpg started an agent for this home: end it.
		cmd := exec.Command("gpgconf", "--kill", "gpg-agent")
		cmd.Env = append(os.Environ(), "GNUPGHOME="+home)
		_ = cmd.Run()
	})
	run := func(args ...string) []byte {
		t.Helper()
		cmd := exec.Command(gpg, append([]string{"--batch", "--no-tty", "--faked-system-time", "20240101T000000!", "--pinentry-mode", "loopback", "--passphrase", ""}, args...)...)
		cmd.Env = append(os.Environ(), "GNUPGHOME="+home)
		out, err := cmd.Output()
		if err != nil {
			var stderr []byte
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = ee.Stderr
			}
			t.Fatalf("gpg %s: %v\n%s", strings.Join(args, " "), err, stderr)
		}
		return out
	}
	const uid = "imgbake tests <imgbake-tests@localhost>"
	run("--quick-generate-key", uid, "ed25519", "sign", "never")
	run("--local-user", uid, "--clearsign", "--output", filepath.Join(dir, "InRelease"), filepath.Join(dir, "Release"))
	return run("--armor", "--export", uid)
}
