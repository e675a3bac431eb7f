package bootvm

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// HostArchive builds an APT archive of the host's own packages (and their
// dependencies) that a root with the given dpkg status and os-release
// lacks, rebuilt by testimages/hostdebs: the test images have no network
// to the Debian mirror, and the host runs their release. repoRoot is the
// imgbake checkout (hostdebs is built from it); work is an empty private
// directory. It returns the archive's directory, with its Packages index.
func HostArchive(ctx context.Context, repoRoot, work string, dpkgStatus, osRelease []byte, pkgs ...string) (string, error) {
	if len(pkgs) == 0 {
		return "", errNoPackages
	}
	scanner, err := exec.LookPath("dpkg-scanpackages")
	if err != nil {
		return "", fmt.Errorf("bootvm: %w (apt-get install dpkg-dev)", err)
	}
	// hostdebs reads only the root's dpkg database and os-release.
	root := filepath.Join(work, "root")
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates", "etc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return "", err
		}
	}
	if err := os.WriteFile(filepath.Join(root, "var/lib/dpkg/status"), dpkgStatus, 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(root, "etc/os-release"), osRelease, 0o644); err != nil {
		return "", err
	}
	tool := filepath.Join(work, "hostdebs")
	build := exec.CommandContext(ctx, "go", "build", "-o", tool, "./testimages/hostdebs")
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("bootvm: go build hostdebs: %w\n%s", err, out)
	}
	stage := filepath.Join(work, "work")
	if err := os.Mkdir(stage, 0o755); err != nil {
		return "", err
	}
	if out, err := exec.CommandContext(ctx, tool, append([]string{"-root", root, "-work", stage}, pkgs...)...).CombinedOutput(); err != nil {
		return "", fmt.Errorf("bootvm: hostdebs %v: %w\n%s", pkgs, err, out)
	}
	repo := filepath.Join(stage, "debs")
	scan := exec.CommandContext(ctx, scanner, "-m", ".", "/dev/null")
	scan.Dir = repo
	index, err := scan.Output()
	if err != nil {
		return "", fmt.Errorf("bootvm: dpkg-scanpackages in %s: %w", repo, err)
	}
	if err := os.WriteFile(filepath.Join(repo, "Packages"), index, 0o644); err != nil {
		return "", err
	}
	return repo, nil
}

// ArchivePackages counts the packages of an archive HostArchive built.
func ArchivePackages(repo string) int {
	b, err := os.ReadFile(filepath.Join(repo, "Packages"))
	if err != nil {
		return 0
	}
	return strings.Count("\n"+string(b), "\nPackage: ")
}

// ServeArchive serves repo over HTTP on a localhost port and returns the
// sources.list line that reaches it from inside QEMU's user network
// (10.0.2.2 is the host there) and a function that stops the server.
func ServeArchive(repo string) (source string, stop func(), err error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("bootvm: serving %s: %w", repo, err)
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(repo))}
	go func() { _ = srv.Serve(l) }()
	return SourceLine(l.Addr().(*net.TCPAddr).Port), func() { _ = srv.Close() }, nil
}

// SourceLine is the sources.list line of an archive served on port.
func SourceLine(port int) string {
	return fmt.Sprintf("deb [trusted=yes] http://10.0.2.2:%d/ ./", port)
}
