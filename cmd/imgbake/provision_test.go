package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgbake/imgbake/testimages"
)

// TestProvisionExample runs examples/provision on the Debian test image:
// it must apply, and a second run with --force must change nothing. Its
// package steps use the tests' local APT repository (see testAptRepo),
// which a preparatory recipe makes the image's only source; the example
// itself is run as users get it.
func TestProvisionExample(t *testing.T) {
	vmTests(t)
	repo := testAptRepo(t)
	// A private copy of the example, so its generated secrets stay here.
	dir := filepath.Join(t.TempDir(), "provision")
	if out, err := exec.Command("cp", "-a", "../../examples/provision", dir).CombinedOutput(); err != nil {
		t.Fatalf("copying the example: %v %s", err, out)
	}
	os.RemoveAll(filepath.Join(dir, "secrets"))
	must(t, os.Mkdir(filepath.Join(dir, "secrets"), 0o700))
	recipe := filepath.Join(dir, "provision.yaml")
	disk := testimages.Fresh(t, testimages.NoPart)
	if r := imgbake(t, "run", "-a", disk, writeRecipe(t, "name: local apt sources\nsteps:\n"+localAptStep(repo))); r.code != 0 {
		t.Fatalf("pointing apt at the local repository: %s", r)
	}

	r := imgbake(t, "run", "-a", disk, recipe)
	if r.code != 0 {
		t.Fatalf("first run: %s", r)
	}
	if !strings.Contains(r.stdout, "provision: ") || !strings.Contains(r.stdout, " 0 failed") {
		t.Errorf("first run summary:\n%s", r.stdout)
	}
	r = imgbake(t, "run", "--force", "-a", disk, recipe)
	if r.code != 0 || !strings.Contains(r.stdout, " 0 changed,") {
		t.Fatalf("the second run with --force must report 0 changed:\n%s", r)
	}

	files, err := testimages.ReadFiles(t, disk, "raw", 0, "/etc/passwd", "/etc/shadow", "/home/ops/.ssh/authorized_keys",
		"/etc/sudoers.d/ops", "/etc/fstab", "/etc/cron.d/cleanup", "/usr/local/sbin/imgbake-cleanup",
		"/etc/systemd/system/app.service", "/etc/default/app", "/etc/sysconfig/app", "/etc/machine-id",
		"/usr/sbin/haveged", "/etc/ssh/sshd_config.d/50-imgbake.conf")
	must(t, err)
	key, err := os.ReadFile(filepath.Join(dir, "files", "ops.pub"))
	must(t, err)
	checks := []struct {
		path, want string
	}{
		{"/etc/passwd", "ops:x:"},
		{"/home/ops/.ssh/authorized_keys", strings.TrimSpace(string(key))},
		{"/etc/sudoers.d/ops", "ops ALL=(ALL:ALL) NOPASSWD: ALL"},
		{"/etc/fstab", "LABEL=data"},
		{"/etc/fstab", "nofail,x-systemd.automount"},
		{"/etc/cron.d/cleanup", "17 3 * * * root /usr/local/sbin/imgbake-cleanup"},
		{"/etc/systemd/system/app.service", "EnvironmentFile=/etc/default/app"},
		{"/etc/default/app", "APP_OPTS"},
		{"/etc/ssh/sshd_config.d/50-imgbake.conf", "PermitRootLogin no"},
	}
	for _, c := range checks {
		if !strings.Contains(string(files[c.path]), c.want) {
			t.Errorf("%s lacks %q:\n%s", c.path, c.want, files[c.path])
		}
	}
	if _, ok := files["/usr/sbin/haveged"]; !ok {
		t.Error("haveged is not installed")
	}
	if !repo.Requested(debPath(havegedFixture)) {
		t.Errorf("haveged was not fetched from the local repository; it served %v", repo.Requests())
	}
	if _, ok := files["/etc/sysconfig/app"]; ok {
		t.Error("the rhel-only step ran on Debian")
	}
	// Debian minbase may have no machine-id at all; if there is one it is empty.
	if m := files["/etc/machine-id"]; len(m) != 0 {
		t.Errorf("/etc/machine-id = %q, want empty or absent", m)
	}
	for _, u := range []string{"root", "ops"} {
		name := "root-password.txt"
		if u == "ops" {
			name = "ops-password.txt"
		}
		pw, err := os.ReadFile(filepath.Join(dir, "secrets", name))
		must(t, err)
		hash := dbField(files["/etc/shadow"], u, 1)
		if !hostCryptMatches(t, strings.TrimSpace(string(pw)), hash) {
			t.Errorf("%s's hash %q does not match the generated passphrase", u, hash)
		}
	}
	wants, err := testimages.Stat(t, disk, "raw", 0, "/etc/systemd/system/multi-user.target.wants/app.service")
	if err != nil || wants.Target != "/etc/systemd/system/app.service" {
		t.Errorf("app.service is not enabled: %+v %v", wants, err)
	}
}
