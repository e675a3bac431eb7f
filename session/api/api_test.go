package api

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCheckName(t *testing.T) {
	for _, n := range []string{"s1", "debian-nopart", "a.b_c-d", "X", strings.Repeat("a", 48)} {
		if err := CheckName(n); err != nil {
			t.Errorf("CheckName(%q) = %v", n, err)
		}
	}
	for _, n := range []string{"", ".hidden", "-x", "_x", "a/b", "..", "a b", strings.Repeat("a", 49), "é"} {
		if CheckName(n) == nil || ValidName(n) {
			t.Errorf("CheckName(%q) accepted it", n)
		}
	}
}

func TestBase(t *testing.T) {
	xdg := t.TempDir()
	t.Setenv("XDG_RUNTIME_DIR", xdg)
	base, err := Base()
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(xdg, "imgbake", "sessions"); base != want {
		t.Errorf("Base() = %s, want %s", base, want)
	}
	for _, d := range []string{filepath.Dir(base), base} {
		if fi, err := os.Stat(d); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v, %v; want a 0700 directory", d, fi.Mode(), err)
		}
	}
	// A directory others can read is refused.
	if err := os.Chmod(base, 0o750); err != nil {
		t.Fatal(err)
	}
	if _, err := Base(); err == nil || !strings.Contains(err.Error(), "not a private directory") {
		t.Errorf("Base() with a group-readable directory = %v", err)
	}

	t.Setenv("XDG_RUNTIME_DIR", "")
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	base, err = Base()
	if err != nil || !strings.HasPrefix(base, filepath.Join(tmp, "imgbake-")) || filepath.Base(base) != "sessions" {
		t.Errorf("Base() without XDG_RUNTIME_DIR = %s, %v", base, err)
	}
}

func TestCheckPrivateRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real")
	if err := os.Mkdir(real, 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	if CheckPrivate(real) != nil || CheckPrivate(link) == nil {
		t.Errorf("CheckPrivate: real %v, symlink %v", CheckPrivate(real), CheckPrivate(link))
	}
}

func TestInfoRoundTrip(t *testing.T) {
	dir := t.TempDir()
	disk := filepath.Join(dir, "disk.raw")
	if err := os.WriteFile(disk, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := DiskOf(disk)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := DiskOf(filepath.Join(dir, ".", "disk.raw"))
	if !d.Same(other) || d.Path != disk {
		t.Errorf("DiskOf: %+v vs %+v", d, other)
	}
	in := Info{Name: "s", State: StateReady, PID: 12, ProcID: "12 345", Disks: []Disk{d}, Started: time.Now().UTC().Round(0), IdleTimeout: "15m0s"}
	if err := WriteInfo(dir, in); err != nil {
		t.Fatal(err)
	}
	out, err := ReadInfo(dir)
	if err != nil || out.Name != in.Name || out.ProcID != in.ProcID || !out.Started.Equal(in.Started) || len(out.Disks) != 1 || !out.Disks[0].Same(d) {
		t.Errorf("ReadInfo = %+v, %v; want %+v", out, err, in)
	}
	if fi, err := os.Stat(filepath.Join(dir, InfoFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("info.json mode: %v, %v", fi.Mode(), err)
	}
}

func TestSockAddrLongPath(t *testing.T) {
	short := t.TempDir()
	if p, done, err := SockAddr(short); err != nil || p != filepath.Join(short, SockFile) {
		t.Errorf("SockAddr(%s) = %s, %v", short, p, err)
	} else {
		done()
	}
	long := filepath.Join(short, strings.Repeat("d", 120))
	if err := os.Mkdir(long, 0o700); err != nil {
		t.Fatal(err)
	}
	p, done, err := SockAddr(long)
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	if !strings.HasPrefix(p, "/proc/self/fd/") || len(p) >= 100 {
		t.Errorf("SockAddr of a long directory = %s", p)
	}
}
