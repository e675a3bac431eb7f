// Command hostdebs rebuilds packages installed on this host as .deb files,
// so that testimages/build.sh can install them into a Debian root when the
// Debian mirror cannot be reached (tests must build their images without a
// network). The host must run the root's Debian release on the root's
// architecture; hostdebs checks that.
//
// Usage:
//
//	hostdebs -root ROOT -work DIR PACKAGE...
//
// It takes the closure of the PACKAGEs' Pre-Depends and Depends on the host
// (for each dependency the first alternative installed on the host, a
// virtual package through the host's Provides, arch qualifiers such as
// ":any" ignored), leaves out what ROOT's dpkg database already satisfies,
// and rebuilds each remaining package from the host's dpkg database: its
// control fields (`dpkg-query -s` less the status fields), conffiles,
// maintainer scripts and other control files from /var/lib/dpkg/info, and
// its files as `dpkg-query -L` lists them, copied with their modes and
// owners. Versions in dependencies are not compared: dpkg checks them when
// it installs.
//
// DIR must be an existing empty directory: everything hostdebs writes is
// inside it (staging trees in DIR/stage, the packages in DIR/debs). ROOT is
// only read. On stdout it prints the install order, one batch per line (the
// .deb file names in DIR/debs, separated by spaces; packages that depend on
// each other in a cycle share a batch): `dpkg -i` each batch in turn, so
// that every Pre-Depends is configured before the package that needs it is
// unpacked.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// hostAdminDir is the host's dpkg database; its info directory holds each
// installed package's control files.
const hostAdminDir = "/var/lib/dpkg"

func main() {
	root := flag.String("root", "", "the Debian root the packages are for (read only)")
	work := flag.String("work", "", "an existing empty directory for the staging trees and the .debs")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: hostdebs -root ROOT -work DIR PACKAGE...\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *root == "" || *work == "" || flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	batches, err := run(*root, *work, flag.Args())
	if err != nil {
		fmt.Fprintln(os.Stderr, "hostdebs:", err)
		os.Exit(1)
	}
	for _, b := range batches {
		fmt.Println(strings.Join(b, " "))
	}
}

func run(root, work string, wanted []string) ([][]string, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("must run as root (the packages' files keep their owners)")
	}
	work, err := checkWorkDir(work)
	if err != nil {
		return nil, err
	}
	if err := checkSameRelease(root); err != nil {
		return nil, err
	}
	host, err := queryDatabase(hostAdminDir)
	if err != nil {
		return nil, err
	}
	target, err := queryDatabase(filepath.Join(root, "var/lib/dpkg"))
	if err != nil {
		return nil, err
	}
	pkgs, deps, err := closure(host, target, wanted)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(pkgs))
	for _, p := range pkgs {
		names = append(names, p.Name)
	}
	fmt.Fprintf(os.Stderr, "hostdebs: %d packages to rebuild from the host: %s\n", len(pkgs), strings.Join(names, " "))
	debDir := filepath.Join(work, "debs")
	stageDir := filepath.Join(work, "stage")
	for _, d := range []string{debDir, stageDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return nil, err
		}
	}
	debOf := map[string]string{}
	for _, p := range pkgs {
		deb, err := repack(p, filepath.Join(stageDir, p.Name), debDir)
		if err != nil {
			return nil, fmt.Errorf("rebuilding %s: %w", p.BinaryPackage, err)
		}
		debOf[p.Name] = filepath.Base(deb)
	}
	var batches [][]string
	for _, group := range installOrder(names, deps) {
		var b []string
		for _, n := range group {
			b = append(b, debOf[n])
		}
		batches = append(batches, b)
	}
	return batches, nil
}

// checkWorkDir returns the absolute path of work, which must be an
// existing empty directory (so nothing of value can be overwritten) other
// than the filesystem root.
func checkWorkDir(work string) (string, error) {
	abs, err := filepath.Abs(work)
	if err != nil {
		return "", err
	}
	resolved, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", fmt.Errorf("work directory: %w", err)
	}
	if resolved == "/" {
		return "", errors.New("the work directory must not be /")
	}
	entries, err := os.ReadDir(resolved)
	if err != nil {
		return "", fmt.Errorf("work directory: %w", err)
	}
	if len(entries) > 0 {
		return "", fmt.Errorf("work directory %s is not empty", resolved)
	}
	return resolved, nil
}

// checkSameRelease makes sure the host's packages fit root: the same
// Debian release (VERSION_CODENAME of os-release) and dpkg architecture.
func checkSameRelease(root string) error {
	hostOS, err := os.ReadFile("/etc/os-release")
	if err != nil {
		return err
	}
	rootOS, err := readOSRelease(root)
	if err != nil {
		return err
	}
	hostSuite, rootSuite := osReleaseField(hostOS, "VERSION_CODENAME"), osReleaseField(rootOS, "VERSION_CODENAME")
	if hostSuite == "" || hostSuite != rootSuite {
		return fmt.Errorf("the host runs %q, the root is %q (VERSION_CODENAME in os-release): the host's packages do not fit", hostSuite, rootSuite)
	}
	hostArch, err := output("dpkg", "--print-architecture")
	if err != nil {
		return err
	}
	rootArch, err := output("dpkg-query", "--admindir="+filepath.Join(root, "var/lib/dpkg"), "-W", "--showformat=${Architecture}", "dpkg")
	if err != nil {
		return err
	}
	if hostArch != rootArch {
		return fmt.Errorf("the host's dpkg architecture is %q, the root's %q: the host's packages do not fit", hostArch, rootArch)
	}
	return nil
}

// readOSRelease reads root's os-release (/etc/os-release, else
// /usr/lib/os-release), resolving a symlink inside root, never on the host.
func readOSRelease(root string) ([]byte, error) {
	for _, p := range []string{"/etc/os-release", "/usr/lib/os-release"} {
		file := filepath.Join(root, p)
		if target, err := os.Readlink(file); err == nil {
			if filepath.IsAbs(target) {
				file = filepath.Join(root, target)
			} else {
				file = filepath.Join(root, filepath.Dir(p), target)
			}
			if !strings.HasPrefix(file, filepath.Clean(root)+"/") {
				return nil, fmt.Errorf("%s points outside the root", filepath.Join(root, p))
			}
		}
		data, err := os.ReadFile(file)
		if err == nil {
			return data, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	return nil, fmt.Errorf("%s has no os-release", root)
}

// osReleaseField returns KEY's value in an os-release file, unquoted.
func osReleaseField(data []byte, key string) string {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if ok && k == key {
			return strings.Trim(v, `"'`)
		}
	}
	return ""
}

func output(name string, args ...string) (string, error) {
	var stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return strings.TrimSpace(string(out)), nil
}
