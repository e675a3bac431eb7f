package appliance_test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// writeTree makes files under root: path → content; "->target" makes a
// symlink, "fifo" a named pipe, a path ending in "/" a directory.
func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch {
		case strings.HasSuffix(p, "/"):
			err = os.MkdirAll(full, 0o755)
		case content == "fifo":
			err = syscall.Mkfifo(full, 0o644)
		case strings.HasPrefix(content, "->"):
			err = os.Symlink(strings.TrimPrefix(content, "->"), full)
		default:
			err = os.WriteFile(full, []byte(content), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestPipeInspectWithoutOSRelease: the agent identifies a CentOS 6 root by
// its release files (redhat-release a symlink to centos-release, as CentOS
// 6 has it), takes the package manager from the distribution and version
// (yum, though apt-get is there too), finds the rpm database, and reads
// the host name from /etc/sysconfig/network.
func TestPipeInspectWithoutOSRelease(t *testing.T) {
	s, root, _ := pipeSession(t)
	writeTree(t, root, map[string]string{
		"etc/centos-release":     "CentOS release 6.10 (Final)\n",
		"etc/redhat-release":     "->centos-release",
		"etc/system-release":     "->/etc/centos-release",
		"etc/sysconfig/network":  "NETWORKING=yes\nHOSTNAME=centos6.example\n",
		"var/lib/rpm/Packages":   "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x61\x15\x06\x00",
		"var/lib/dpkg/status":    "Package: base-files\n",
		"usr/bin/apt-get":        "#!/bin/sh\n",
		"etc/debian_version":     "12.15\n",
		"usr/lib/os-release.bak": "ID=debian\n",
	})
	info, err := s.Inspect(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if info.ID != "centos" || info.VersionID != "6.10" || info.PrettyName != "CentOS release 6.10 (Final)" || info.Family != "rhel" ||
		info.ReleaseFile != "/etc/centos-release" || strings.Join(info.IDLike, " ") != "rhel fedora" {
		t.Errorf("os: %+v", info)
	}
	if info.PackageManager != "yum" || info.PackageFormat != "rpm" || info.PackageDB != "/var/lib/rpm/Packages" {
		t.Errorf("packages: manager %q format %q database %q, want yum rpm /var/lib/rpm/Packages", info.PackageManager, info.PackageFormat, info.PackageDB)
	}
	if info.Hostname != "centos6.example" {
		t.Errorf("hostname %q", info.Hostname)
	}
	if len(info.OSRelease) != 0 {
		t.Errorf("os_release %v, want none", info.OSRelease)
	}
}

// TestPipeInspectHostileReleaseFiles: release files that are a FIFO (which
// would block a reader), a directory, or a symlink climbing out of the
// image are passed over, never followed out, and never hang the agent.
func TestPipeInspectHostileReleaseFiles(t *testing.T) {
	s, root, _ := pipeSession(t)
	outside := filepath.Join(filepath.Dir(root), "outside-release")
	if err := os.WriteFile(outside, []byte("Fedora release 30 (Thirty)\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	writeTree(t, root, map[string]string{
		"etc/os-release":      "fifo",
		"usr/lib/os-release/": "",
		"etc/lsb-release":     "fifo",
		"etc/redhat-release":  "->../../outside-release",
		"etc/centos-release":  "->/../outside-release",
		"etc/debian_version":  "11.9\n",
		"etc/fstab":           "fifo",
		"etc/hostname":        "fifo",
		"etc/HOSTNAME":        "h\n",
	})
	info, err := s.Inspect(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if info.ID != "debian" || info.VersionID != "11.9" || info.ReleaseFile != "/etc/debian_version" || info.Family != "debian" {
		t.Errorf("os: %+v", info)
	}
	if info.Hostname != "h" {
		t.Errorf("hostname %q, want h (the FIFO at /etc/hostname passed over)", info.Hostname)
	}
	if info.PackageManager != "apt" || info.PackageFormat != "deb" || info.PackageDB != "" {
		t.Errorf("packages: %q %q %q, want apt deb and no database", info.PackageManager, info.PackageFormat, info.PackageDB)
	}
	rep, err := s.FstabCheck(testCtx(t))
	if err == nil && rep.Exists {
		t.Errorf("a FIFO /etc/fstab read as an fstab: %+v", rep)
	}
}
