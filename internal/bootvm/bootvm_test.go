package bootvm

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestSSHArgsIgnoreTheHostsSSHSetup(t *testing.T) {
	args := SSHArgs("/k/id", 2222)
	joined := strings.Join(args, " ")
	for _, want := range []string{"-F /dev/null", "-i /k/id", "-p 2222", "-o IdentitiesOnly=yes", "-o UserKnownHostsFile=/dev/null", "-o GlobalKnownHostsFile=/dev/null", "-o BatchMode=yes"} {
		if !strings.Contains(joined, want) {
			t.Errorf("ssh args lack %q: %s", want, joined)
		}
	}
	if slices.Contains(args, "") {
		t.Errorf("an empty argument: %q", args)
	}
}

func TestStartRefusesAnUnknownFormat(t *testing.T) {
	// The format is never probed: anything but raw or qcow2 is refused
	// before QEMU starts.
	for _, f := range []string{"", "vmdk", "auto"} {
		if g, err := Start(Options{Name: "x", Disk: "/nonexistent", Format: f, Dir: t.TempDir()}); err == nil {
			g.Stop()
			t.Errorf("format %q: no error", f)
		}
	}
}

func TestArchivePackagesAndSourceLine(t *testing.T) {
	dir := t.TempDir()
	index := "Package: python3\nVersion: 3.11\n\nPackage: libpython3.11\nVersion: 3.11\n"
	if err := os.WriteFile(filepath.Join(dir, "Packages"), []byte(index), 0o644); err != nil {
		t.Fatal(err)
	}
	if n := ArchivePackages(dir); n != 2 {
		t.Errorf("ArchivePackages = %d, want 2", n)
	}
	if n := ArchivePackages(t.TempDir()); n != 0 {
		t.Errorf("no index: %d packages", n)
	}
	if got := SourceLine(8080); got != "deb [trusted=yes] http://10.0.2.2:8080/ ./" {
		t.Errorf("SourceLine = %q", got)
	}
}

func TestServeArchive(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Packages"), []byte("Package: a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	source, stop, err := ServeArchive(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	port, ok := strings.CutPrefix(source, "deb [trusted=yes] http://10.0.2.2:")
	port, ok2 := strings.CutSuffix(port, "/ ./")
	if !ok || !ok2 {
		t.Fatalf("source %q", source)
	}
	// 10.0.2.2 is the host inside QEMU; from the host it is loopback.
	resp, err := http.Get("http://127.0.0.1:" + port + "/Packages")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || string(body) != "Package: a\n" {
		t.Errorf("GET /Packages: %q, %v", body, err)
	}
	stop()
	if _, err := http.Get("http://127.0.0.1:" + port + "/Packages"); err == nil {
		t.Error("the archive is still served after stop")
	}
}

func TestHostArchiveNeedsPackages(t *testing.T) {
	if _, err := HostArchive(t.Context(), ".", t.TempDir(), nil, nil); err == nil {
		t.Error("no packages: no error")
	}
}
