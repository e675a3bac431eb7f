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
	return append(paths, "usr/share/doc/imgbake/copyright", "usr/share/doc/imgbake/changelog.gz", "usr/share/doc/imgbake/README.md.gz",
		"usr/share/lintian/overrides/imgbake")
}

// TestDebPackage builds the package and reads it back with dpkg-deb: its
// control fields, its files (the install layout, owned by root), their
// checksums, its changelog; runs the binary it holds; and has lintian check
// it.
func TestDebPackage(t *testing.T) {
	deb := buildDeb(t)
	t.Run("lintian", func(t *testing.T) { lintianClean(t, deb) })
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

	// A native package's changelog, in Debian's format, for this version.
	changelog, err := exec.Command("zcat", filepath.Join(dir, "usr/share/doc/imgbake/changelog.gz")).Output()
	must(t, err)
	head := `^imgbake \(` + regexp.QuoteMeta(gitVersion(t)) + `\) unstable; urgency=medium\n\n  \* .+\n\n -- [^<>]+ <[^<>]+>  [A-Z][a-z]{2}, [0-9]{2} [A-Z][a-z]{2} [0-9]{4} [0-9:]{8} \+0000\n$`
	if !regexp.MustCompile(head).Match(changelog) {
		t.Errorf("changelog.gz is not a Debian changelog entry for this version:\n%s", changelog)
	}
}

// lintianClean runs lintian on the package: any error fails the test, the
// warnings (and the overrides that hid one) are logged.
func lintianClean(t *testing.T, deb string) {
	lintian := vmtest.LookPath(t, "lintian", "lintian")
	cmd := exec.Command(lintian, "--fail-on", "error", "--show-overrides", deb)
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8")
	out, err := cmd.CombinedOutput()
	var errs []string
	for _, line := range strings.Split(string(out), "\n") {
		switch {
		case strings.HasPrefix(line, "E: "):
			errs = append(errs, line)
		case line != "" && line != "running with root privileges is not recommended!":
			t.Logf("lintian: %s", line)
		}
	}
	if err != nil || len(errs) > 0 {
		t.Errorf("lintian --fail-on error %s: %v\n%s", filepath.Base(deb), err, strings.Join(errs, "\n"))
	}
}

// TestDebInstallsIntoDebianChroot installs the package with apt into a
// fresh Debian 12 root (the debootstrap tarball the test images are made
// from), offline: its dependencies (qemu, qemu-img, a kernel) are the host's
// installed packages rebuilt as .debs (testimages/hostdebs) into a flat
// file:/ repository inside the root, the root's only APT source. Then
// imgbake, with nothing from the checkout, bakes a test image copied into the
// root (read back on the host with debugfs), and apt purges it.
func TestDebInstallsIntoDebianChroot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (chroot)")
	}
	vmTests(t)
	vmtest.LookPath(t, "dpkg-scanpackages", "dpkg-dev")
	tarball := filepath.Join(testimages.Dir(), "rootfs-bookworm.tar")
	if _, err := os.Stat(tarball); err != nil {
		vmtest.Missing(t, "%s (the Debian 12 debootstrap root; `make images` makes it)", tarball)
	}
	deb := buildDeb(t)
	tmp := t.TempDir()
	root := filepath.Join(tmp, "root")
	must(t, os.Mkdir(root, 0o755))
	if out, err := exec.Command("tar", "-xf", tarball, "-C", root).CombinedOutput(); err != nil {
		t.Fatalf("extracting %s: %v\n%s", tarball, err, out)
	}

	// The Depends, from the host, minus what the root has.
	tool := filepath.Join(tmp, "hostdebs")
	build := exec.Command("go", "build", "-o", tool, "./testimages/hostdebs")
	build.Dir = repoRoot(t)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build hostdebs: %v\n%s", err, out)
	}
	work := filepath.Join(tmp, "hostdebs.d")
	must(t, os.Mkdir(work, 0o755))
	if out, err := exec.Command(tool, "-root", root, "-work", work,
		"qemu-system-x86", "qemu-utils", "linux-image-cloud-amd64", "e2fsprogs").CombinedOutput(); err != nil {
		t.Fatalf("hostdebs: %v\n%s", err, out)
	}
	repo := filepath.Join(root, "srv/repo")
	must(t, os.MkdirAll(repo, 0o755))
	debs, err := filepath.Glob(filepath.Join(work, "debs", "*.deb"))
	must(t, err)
	if len(debs) == 0 {
		t.Fatal("hostdebs rebuilt no packages: the root has qemu already?")
	}
	for _, d := range debs {
		must(t, os.Rename(d, filepath.Join(repo, filepath.Base(d))))
	}
	scan := exec.Command("dpkg-scanpackages", "-m", ".", "/dev/null")
	scan.Dir = repo
	index, err := scan.Output()
	must(t, err)
	must(t, os.WriteFile(filepath.Join(repo, "Packages"), index, 0o644))
	must(t, os.RemoveAll(filepath.Join(root, "etc/apt/sources.list.d")))
	must(t, os.MkdirAll(filepath.Join(root, "etc/apt/sources.list.d"), 0o755))
	must(t, os.WriteFile(filepath.Join(root, "etc/apt/sources.list"), []byte("deb [trusted=yes] file:/srv/repo ./\n"), 0o644))
	data, err := os.ReadFile(deb)
	must(t, err)
	debName := filepath.Base(deb)
	must(t, os.WriteFile(filepath.Join(root, "root", debName), data, 0o644))

	// /dev and /proc for apt's maintainer scripts and qemu; undone at cleanup.
	mount := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("mount", args...).CombinedOutput(); err != nil {
			t.Fatalf("mount %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	for _, m := range []string{"proc", "dev"} {
		target := filepath.Join(root, m)
		t.Cleanup(func() {
			if !mounted(t, target) {
				return
			}
			if out, err := exec.Command("umount", "-R", target).CombinedOutput(); err != nil {
				t.Logf("umount %s: %v\n%s; lazy unmount", target, err, out)
				exec.Command("umount", "-R", "-l", target).Run()
			}
			if mounted(t, target) {
				t.Errorf("%s is still mounted", target)
			}
		})
	}
	mount("-t", "proc", "proc", filepath.Join(root, "proc"))
	mount("--bind", "/dev", filepath.Join(root, "dev"))
	mount("--make-rslave", filepath.Join(root, "dev"))

	chroot := func(args ...string) (string, error) {
		cmd := exec.Command("chroot", append([]string{root}, args...)...)
		cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LC_ALL=C",
			"DEBIAN_FRONTEND=noninteractive", "IMGBAKE_ACCEL=tcg"}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	apt := []string{"apt-get", "-y", "-o", "Dir::Etc::sourceparts=-"}
	if out, err := chroot(append(apt, "update")...); err != nil {
		t.Fatalf("apt-get update: %v\n%s", err, out)
	}
	if out, err := chroot(append(apt, "--no-install-recommends", "install", "/root/"+debName)...); err != nil {
		t.Fatalf("apt-get install ./%s: %v\n%s", debName, err, out)
	}
	if out, _ := chroot("dpkg-query", "-W", "-f=${Status} ${Version}", "imgbake"); out != "install ok installed "+gitVersion(t) {
		t.Errorf("dpkg-query: %q", out)
	}
	out, err := chroot("imgbake", "version", "--json")
	if err != nil || !strings.Contains(out, `"version": "`+gitVersion(t)+`"`) ||
		!strings.Contains(out, `"path": "/usr/bin/qemu-system-x86_64"`) || !strings.Contains(out, `"path": "/boot/vmlinuz-`) {
		t.Errorf("imgbake version --json in the chroot: %v\n%s", err, out)
	}
	if out, err := chroot("bash", "-c", "source /usr/share/bash-completion/completions/imgbake && complete -p imgbake"); err != nil ||
		!strings.Contains(out, "_imgbake imgbake") {
		t.Errorf("bash completion in the chroot: %v\n%s", err, out)
	}

	img := testimages.Fresh(t, testimages.NoPart)
	disk := filepath.Join(root, "root/disk.raw")
	if out, err := exec.Command("cp", "--sparse=always", img, disk).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	recipe := "steps:\n  - write:\n      path: /etc/imgbake-deb-test\n      content: \"baked by the package\\n\"\n"
	must(t, os.WriteFile(filepath.Join(root, "root/recipe.yaml"), []byte(recipe), 0o644))
	if out, err := chroot("imgbake", "run", "-a", "/root/disk.raw", "/root/recipe.yaml"); err != nil {
		t.Fatalf("imgbake run in the chroot: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(root, "root/.cache/imgbake/appliance")); err != nil {
		t.Errorf("the appliance is not cached in the chroot's /root/.cache: %v", err)
	}
	got, err := testimages.ReadFile(t, disk, "raw", 0, "/etc/imgbake-deb-test")
	if err != nil || string(got) != "baked by the package\n" {
		t.Errorf("the baked file: %q, %v", got, err)
	}

	if out, err := chroot(append(apt, "purge", "imgbake")...); err != nil {
		t.Fatalf("apt-get purge imgbake: %v\n%s", err, out)
	}
	for _, f := range debLayout(t) {
		if _, err := os.Lstat(filepath.Join(root, f)); err == nil {
			t.Errorf("%s is still there after apt-get purge", f)
		}
	}
}

// mounted reports whether path is a mount point (in /proc/self/mountinfo).
func mounted(t *testing.T, path string) bool {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == path {
			return true
		}
	}
	return false
}
