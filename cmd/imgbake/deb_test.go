package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/imgbake/imgbake/internal/vmtest"
	"github.com/imgbake/imgbake/testimages"
)

// buildDeb runs make deb into a temporary directory and returns the
// package's path.
func buildDeb(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Skip("dpkg-deb not installed (Debian: dpkg)")
	}
	out := t.TempDir()
	runMake(t, "deb", "DEB_OUT="+out, "DEB_WORK="+filepath.Join(out, "work"))
	deb := filepath.Join(out, "imgbake_"+gitVersion(t)+"_amd64.deb")
	if _, err := os.Stat(deb); err != nil {
		t.Fatalf("make deb did not write %s: %v", deb, err)
	}
	return deb
}

func dpkgDeb(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("dpkg-deb", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg-deb %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// debLayout is the README's install layout as the package has it: under
// /usr, zsh completion where Debian's zsh looks, man pages compressed, and
// the documentation Debian requires.
func debLayout(t *testing.T) []string {
	var paths []string
	for _, p := range readmeLayout(t) {
		switch {
		case strings.HasPrefix(p, "share/man/"):
			p += ".gz"
		case p == "share/zsh/site-functions/_imgbake":
			p = "share/zsh/vendor-completions/_imgbake"
		}
		paths = append(paths, "usr/"+p)
	}
	return append(paths, "usr/share/doc/imgbake/copyright", "usr/share/doc/imgbake/changelog.gz", "usr/share/doc/imgbake/README.md.gz")
}

// TestDebPackage builds the package and reads it back with dpkg-deb: its
// control fields, its files (the install layout, owned by root), their
// checksums; then runs the binary it holds.
func TestDebPackage(t *testing.T) {
	deb := buildDeb(t)
	field := func(name string) string {
		return strings.TrimSpace(dpkgDeb(t, "--field", deb, name))
	}
	for name, want := range map[string]string{
		"Package": `^imgbake$`, "Version": `^` + regexp.QuoteMeta(gitVersion(t)) + `$`, "Architecture": `^amd64$`,
		"Section": `^admin$`, "Priority": `^optional$`, "Maintainer": `^[^<>]+ <[^@<>]+@[^@<>]+>$`,
		"Installed-Size": `^[1-9][0-9]{3,}$`, "Homepage": `^https://`,
		"Depends":     `^libc6 \(>= 2\.[0-9]+\), qemu-system-x86, qemu-utils, linux-image-cloud-amd64 \| linux-image-amd64, e2fsprogs$`,
		"Recommends":  `(^|, )ansible-core(,|$).*busybox-static.*xfsprogs`,
		"Suggests":    `openssh-client`,
		"Description": `^customize VM disk images offline, one appliance boot per image\n .+\n`,
	} {
		if got := field(name); !regexp.MustCompile(want).MatchString(got) {
			t.Errorf("%s: %q does not match %q", name, got, want)
		}
	}

	files := map[string]os.FileMode{}
	for _, line := range strings.Split(strings.TrimSpace(dpkgDeb(t, "--contents", deb)), "\n") {
		f := strings.Fields(line) // mode owner size date time path
		if len(f) < 6 {
			t.Fatalf("dpkg-deb --contents: %q", line)
		}
		if f[1] != "root/root" {
			t.Errorf("%s is owned by %s", f[5], f[1])
		}
		if !strings.HasPrefix(f[0], "d") {
			files[strings.TrimPrefix(f[5], "./")] = 0
		}
	}
	checkLayout(t, files, debLayout(t))

	dir := t.TempDir()
	dpkgDeb(t, "-x", deb, dir)
	dpkgDeb(t, "-e", deb, filepath.Join(dir, "DEBIAN"))
	md5 := exec.Command("md5sum", "--check", "--quiet", "DEBIAN/md5sums")
	md5.Dir = dir
	if out, err := md5.CombinedOutput(); err != nil {
		t.Errorf("md5sums of the package: %v\n%s", err, out)
	}
	if out, err := exec.Command("file", "-b", filepath.Join(dir, "usr/bin/imgbake")).Output(); err == nil &&
		(!strings.Contains(string(out), "stripped") || strings.Contains(string(out), "not stripped")) {
		t.Errorf("the packaged binary is not stripped: %s", out)
	}
	checkInstalledTools(t, dir, "usr", "share/bash-completion/completions/imgbake",
		"share/man/man1/imgbake.1.gz", "share/man/man5/imgbake-recipe.5.gz")
}

// TestDebInstallsIntoDebianChroot installs the package with dpkg into a
// fresh Debian 12 root (the debootstrap tarball the test images are made
// from), runs it there and purges it. The dependencies (qemu, a kernel)
// cannot be installed offline: dpkg must name them as missing, then the
// install is forced past them.
func TestDebInstallsIntoDebianChroot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (chroot)")
	}
	tarball := filepath.Join(testimages.Dir(), "rootfs-bookworm.tar")
	if _, err := os.Stat(tarball); err != nil {
		vmtest.Missing(t, "%s (the Debian 12 debootstrap root; `make images` makes it)", tarball)
	}
	deb := buildDeb(t)
	root := t.TempDir()
	if out, err := exec.Command("tar", "-xf", tarball, "-C", root).CombinedOutput(); err != nil {
		t.Fatalf("extracting %s: %v\n%s", tarball, err, out)
	}
	data, err := os.ReadFile(deb)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(root, "imgbake.deb"), data, 0o644))
	chroot := func(args ...string) (string, error) {
		cmd := exec.Command("chroot", append([]string{root}, args...)...)
		cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LC_ALL=C"}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	out, err := chroot("dpkg", "-i", "/imgbake.deb")
	if err == nil {
		t.Fatalf("dpkg -i succeeded without qemu in the chroot:\n%s", out)
	}
	for _, dep := range []string{"qemu-system-x86", "qemu-utils", "linux-image-cloud-amd64"} {
		if !strings.Contains(out, "imgbake depends on "+dep) {
			t.Errorf("dpkg -i does not name the missing %s:\n%s", dep, out)
		}
	}
	if out, err := chroot("dpkg", "--configure", "--force-depends", "imgbake"); err != nil {
		t.Fatalf("dpkg --configure --force-depends: %v\n%s", err, out)
	}
	if out, _ := chroot("dpkg-query", "-W", "-f=${Status} ${Version}", "imgbake"); out != "install ok installed "+gitVersion(t) {
		t.Errorf("dpkg-query: %q", out)
	}
	out, err = chroot("imgbake", "version", "--json")
	if err != nil || !strings.Contains(out, `"version": "`+gitVersion(t)+`"`) || !strings.Contains(out, `"found": false`) {
		t.Errorf("imgbake version --json in the chroot (no qemu, no kernel there): %v\n%s", err, out)
	}
	if out, err := chroot("imgbake", "steps"); err != nil || !strings.Contains(out, "- install: [nginx, haveged]") {
		t.Errorf("imgbake steps in the chroot: %v\n%s", err, out)
	}
	if out, err := chroot("bash", "-c", "source /usr/share/bash-completion/completions/imgbake && complete -p imgbake"); err != nil ||
		!strings.Contains(out, "_imgbake imgbake") {
		t.Errorf("bash completion in the chroot: %v\n%s", err, out)
	}
	if out, err := chroot("dpkg", "--purge", "imgbake"); err != nil {
		t.Fatalf("dpkg --purge: %v\n%s", err, out)
	}
	for _, f := range debLayout(t) {
		if _, err := os.Lstat(filepath.Join(root, f)); err == nil {
			t.Errorf("%s is still there after dpkg --purge", f)
		}
	}
}
