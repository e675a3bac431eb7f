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

// TestRepoStepFamilies: on the Arch-like image (inspected as Arch, pacman
// and its database) and the RHEL-like one (dnf), one recipe adds the same
// repository the way each family keeps it — a [NAME] section of
// pacman.conf, a .repo in /etc/yum.repos.d with its key in
// /etc/pki/rpm-gpg — picked with when:, a second run of the step is ok,
// and a write and a user land too; read back with debugfs and a loop
// mount of the xfs root.
func TestRepoStepFamilies(t *testing.T) {
	vmTests(t)
	tmp := privateTmp(t)
	arch := testimages.Fresh(t, testimages.Arch)
	rep := inspectJSON(t, "-a", arch)
	if rep.OS.ID != "arch" || rep.OS.Family != "arch" || rep.OS.Name != "Arch Linux" || rep.PackageManager != "pacman" ||
		rep.PackageFormat != "pacman" || rep.PackageDB != "/var/lib/pacman/local" || rep.Hostname != "archhost" {
		t.Errorf("arch.raw inspected as %+v, packages %q %q %q, hostname %q", rep.OS, rep.PackageManager, rep.PackageFormat, rep.PackageDB, rep.Hostname)
	}
	key := []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmDMEZZK0gBYJKwYBBAHaRw8BAQdA\n-----END PGP PUBLIC KEY BLOCK-----\n")
	recipe := writeRecipe(t, `steps:
  - repo: {name: imgbake-tests, url: "http://10.0.2.2:8080/$repo/os/$arch", trusted: true}
    when: os.family == "arch"
  - repo: {name: imgbake-tests, url: "http://10.0.2.2:8080/el9/", key: ./imgbake-tests.asc}
    when: os.family == "rhel"
  - repo: {name: imgbake-tests, url: "http://10.0.2.2:8080/$repo/os/$arch", trusted: true}
    when: os.family == "arch"
  - write: {path: /etc/motd, content: "baked\n"}
  - user: {name: ops, uid: 1600}
`)
	must(t, os.WriteFile(filepath.Join(filepath.Dir(recipe), "imgbake-tests.asc"), key, 0o644))

	r := imgbake(t, "run", "-a", arch, recipe)
	wantCode(t, r, 0, "run on arch.raw")
	status := stepStatuses(t, r.stdout)
	for i, want := range []string{"changed", "skipped", "ok", "changed", "changed"} {
		if status[i+1] != want {
			t.Errorf("arch.raw step %d: %s, want %s\n%s", i+1, status[i+1], want, r.stdout)
		}
	}
	files, err := testimages.ReadFiles(t, arch, "raw", 0, "/etc/pacman.conf", "/etc/motd", "/etc/passwd")
	must(t, err)
	conf := string(files["/etc/pacman.conf"])
	wantSection := "\n[extra]\nInclude = /etc/pacman.d/mirrorlist\n\n[imgbake-tests]\nSigLevel = Never\nServer = http://10.0.2.2:8080/$repo/os/$arch\n"
	if !strings.HasSuffix(conf, wantSection) || !strings.HasPrefix(conf, "#\n# /etc/pacman.conf") {
		t.Errorf("pacman.conf:\n%s\nwant the image's with a section appended:%s", conf, wantSection)
	}
	if string(files["/etc/motd"]) != "baked\n" || !strings.Contains(string(files["/etc/passwd"]), "\nops:x:1600:") {
		t.Errorf("motd %q, passwd lacks ops:\n%s", files["/etc/motd"], files["/etc/passwd"])
	}

	info := testimages.InfoOf(t, testimages.RHELLVM)
	rhel := testimages.Fresh(t, testimages.RHELLVM)
	r = imgbake(t, "run", "-a", rhel, recipe)
	wantCode(t, r, 0, "run on rhel-lvm.raw")
	status = stepStatuses(t, r.stdout)
	for i, want := range []string{"skipped", "changed", "skipped", "changed", "changed"} {
		if status[i+1] != want {
			t.Errorf("rhel-lvm.raw step %d: %s, want %s\n%s", i+1, status[i+1], want, r.stdout)
		}
	}
	root := testimages.OpenRange(t, rhel, info.RootOffset, info.RootSize, "xfs")
	repoFile, err := root.ReadFile("/etc/yum.repos.d/imgbake-tests.repo")
	must(t, err)
	wantRepo := "[imgbake-tests]\nname=imgbake-tests\nbaseurl=http://10.0.2.2:8080/el9/\nenabled=1\ngpgcheck=1\ngpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-imgbake-tests\n"
	if !strings.HasSuffix(string(repoFile), wantRepo) {
		t.Errorf("imgbake-tests.repo:\n%s\nwant it to end with\n%s", repoFile, wantRepo)
	}
	if got, err := root.ReadFile("/etc/pki/rpm-gpg/RPM-GPG-KEY-imgbake-tests"); err != nil || string(got) != string(key) {
		t.Errorf("the rpm key: %q, %v", got, err)
	}
	root.Close()
	noLeftovers(t, tmp)
}
