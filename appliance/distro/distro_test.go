package distro

import (
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/imgbake/imgbake/appliance/proto"
)

// rootImage is an Image over a host directory, its paths resolved by
// os.Root (which keeps them inside it, as the agent's RESOLVE_IN_ROOT does).
type rootImage struct{ root *os.Root }

func (r rootImage) ReadFile(p string, limit int64) ([]byte, error) {
	f, err := r.root.Open(strings.TrimPrefix(p, "/"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, &fs.PathError{Op: "read", Path: p, Err: fs.ErrInvalid}
	}
	return io.ReadAll(io.LimitReader(f, limit))
}

func (r rootImage) Stat(p string) (fs.FileMode, error) {
	fi, err := r.root.Stat(strings.TrimPrefix(p, "/"))
	if err != nil {
		return 0, err
	}
	return fi.Mode(), nil
}

// image builds a directory from files: path → content; a content of
// "->target" makes a symlink, a path ending in "/" a directory.
func image(t *testing.T, files map[string]string) Image {
	t.Helper()
	dir := t.TempDir()
	for p, content := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch {
		case strings.HasSuffix(p, "/"):
			err = os.MkdirAll(full, 0o755)
		case strings.HasPrefix(content, "->"):
			err = os.Symlink(strings.TrimPrefix(content, "->"), full)
		default:
			err = os.WriteFile(full, []byte(content), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	return rootImage{root}
}

const debianOSRelease = `PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
ID=debian
`

func TestIdentify(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  Release // OSRelease is not compared
		found bool
	}{
		{"debian os-release", map[string]string{"/etc/os-release": "->../usr/lib/os-release", "/usr/lib/os-release": debianOSRelease, "/etc/debian_version": "12.15\n"},
			Release{ID: "debian", VersionID: "12", PrettyName: "Debian GNU/Linux 12 (bookworm)", File: "/etc/os-release"}, true},
		{"os-release on a /usr not mounted", map[string]string{"/etc/os-release": "->../usr/lib/os-release", "/etc/fstab": "x"}, Release{}, false},
		{"only /usr/lib/os-release", map[string]string{"/usr/lib/os-release": "ID=fedora\nVERSION_ID=39\nID_LIKE=\"rhel centos\"\n"},
			Release{ID: "fedora", VersionID: "39", IDLike: []string{"rhel", "centos"}, File: "/usr/lib/os-release"}, true},
		{"os-release without ID, debian_version", map[string]string{"/etc/os-release": "NAME=x\n", "/etc/debian_version": "11.9\n"},
			Release{ID: "debian", VersionID: "11.9", File: "/etc/debian_version"}, true},
		{"os-release without ID alone", map[string]string{"/etc/os-release": "NAME=x\n"}, Release{File: "/etc/os-release"}, true},
		{"centos 6: centos-release, redhat-release a symlink", map[string]string{
			"/etc/centos-release": "CentOS release 6.10 (Final)\n", "/etc/redhat-release": "->centos-release", "/etc/system-release": "->centos-release"},
			Release{ID: "centos", VersionID: "6.10", PrettyName: "CentOS release 6.10 (Final)", IDLike: []string{"rhel", "fedora"}, File: "/etc/centos-release"}, true},
		{"centos 6: redhat-release alone", map[string]string{"/etc/redhat-release": "CentOS release 6.10 (Final)\n"},
			Release{ID: "centos", VersionID: "6.10", PrettyName: "CentOS release 6.10 (Final)", IDLike: []string{"rhel", "fedora"}, File: "/etc/redhat-release"}, true},
		{"centos 7", map[string]string{"/etc/redhat-release": "CentOS Linux release 7.9.2009 (Core)\n"},
			Release{ID: "centos", VersionID: "7.9", PrettyName: "CentOS Linux release 7.9.2009 (Core)", IDLike: []string{"rhel", "fedora"}, File: "/etc/redhat-release"}, true},
		{"centos 5, no minor", map[string]string{"/etc/redhat-release": "CentOS release 5 (Final)"},
			Release{ID: "centos", VersionID: "5", PrettyName: "CentOS release 5 (Final)", IDLike: []string{"rhel", "fedora"}, File: "/etc/redhat-release"}, true},
		{"centos-release that is no CentOS's", map[string]string{"/etc/centos-release": "something else\n", "/etc/redhat-release": "Fedora release 20 (Heisenbug)\n"},
			Release{ID: "fedora", VersionID: "20", PrettyName: "Fedora release 20 (Heisenbug)", File: "/etc/redhat-release"}, true},
		{"rhel 6", map[string]string{"/etc/redhat-release": "Red Hat Enterprise Linux Server release 6.10 (Santiago)\n"},
			Release{ID: "rhel", VersionID: "6.10", PrettyName: "Red Hat Enterprise Linux Server release 6.10 (Santiago)", IDLike: []string{"fedora"}, File: "/etc/redhat-release"}, true},
		{"rhel 4 update", map[string]string{"/etc/redhat-release": "Red Hat Enterprise Linux AS release 4 (Nahant Update 9)\n"},
			Release{ID: "rhel", VersionID: "4.9", PrettyName: "Red Hat Enterprise Linux AS release 4 (Nahant Update 9)", IDLike: []string{"fedora"}, File: "/etc/redhat-release"}, true},
		{"rhel 3: a bare lsb-release does not decide", map[string]string{
			"/etc/lsb-release":    "LSB_VERSION=1.3\n",
			"/etc/redhat-release": "Red Hat Enterprise Linux AS release 3 (Taroon Update 9)\n"},
			Release{ID: "rhel", VersionID: "3.9", PrettyName: "Red Hat Enterprise Linux AS release 3 (Taroon Update 9)", IDLike: []string{"fedora"}, File: "/etc/redhat-release"}, true},
		{"scientific linux", map[string]string{"/etc/redhat-release": "Scientific Linux release 6.4 (Carbon)\n"},
			Release{ID: "scientific", VersionID: "6.4", PrettyName: "Scientific Linux release 6.4 (Carbon)", IDLike: []string{"rhel", "fedora"}, File: "/etc/redhat-release"}, true},
		{"oracle linux before its redhat-release", map[string]string{
			"/etc/oracle-release": "Oracle Linux Server release 6.10\n", "/etc/redhat-release": "Red Hat Enterprise Linux Server release 6.10 (Santiago)\n"},
			Release{ID: "ol", VersionID: "6.10", PrettyName: "Oracle Linux Server release 6.10", IDLike: []string{"rhel", "fedora"}, File: "/etc/oracle-release"}, true},
		{"other red hat derivative", map[string]string{"/etc/redhat-release": "Foo Linux release 3.2 (X)\n"},
			Release{ID: "redhat-based", VersionID: "3.2", PrettyName: "Foo Linux release 3.2 (X)", IDLike: []string{"rhel", "fedora"}, File: "/etc/redhat-release"}, true},
		{"empty redhat-release", map[string]string{"/etc/redhat-release": ""},
			Release{ID: "redhat-based", IDLike: []string{"rhel", "fedora"}, File: "/etc/redhat-release"}, true},
		{"version too large to be one", map[string]string{"/etc/redhat-release": "CentOS release 99999999999.1\n"},
			Release{ID: "centos", PrettyName: "CentOS release 99999999999.1", IDLike: []string{"rhel", "fedora"}, File: "/etc/redhat-release"}, true},
		{"ubuntu 10.04: lsb-release before debian_version", map[string]string{
			"/etc/lsb-release":    "DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE=10.04\nDISTRIB_CODENAME=lucid\nDISTRIB_DESCRIPTION=\"Ubuntu 10.04.1 LTS\"\n",
			"/etc/debian_version": "squeeze/sid\n"},
			Release{ID: "ubuntu", VersionID: "10.04", PrettyName: "Ubuntu 10.04.1 LTS", IDLike: []string{"debian"}, File: "/etc/lsb-release"}, true},
		{"linux mint", map[string]string{"/etc/lsb-release": "DISTRIB_ID=LinuxMint\nDISTRIB_RELEASE=10\nDISTRIB_DESCRIPTION=\"Linux Mint 10 Julia\"\n"},
			Release{ID: "linuxmint", VersionID: "10", PrettyName: "Linux Mint 10 Julia", IDLike: []string{"ubuntu", "debian"}, File: "/etc/lsb-release"}, true},
		{"debian 6", map[string]string{"/etc/debian_version": "6.0.10\n"}, Release{ID: "debian", VersionID: "6.0.10", File: "/etc/debian_version"}, true},
		{"debian testing", map[string]string{"/etc/debian_version": "bookworm/sid\n"}, Release{ID: "debian", PrettyName: "bookworm/sid", File: "/etc/debian_version"}, true},
		{"arch", map[string]string{"/etc/arch-release": ""}, Release{ID: "arch", File: "/etc/arch-release"}, true},
		{"gentoo", map[string]string{"/etc/gentoo-release": "Gentoo Base System release 2.14\n"},
			Release{ID: "gentoo", VersionID: "2.14", PrettyName: "Gentoo Base System release 2.14", File: "/etc/gentoo-release"}, true},
		{"empty gentoo-release", map[string]string{"/etc/gentoo-release": "\n"}, Release{}, false},
		{"sles 11 sp4", map[string]string{"/etc/SuSE-release": "SUSE Linux Enterprise Server 11 (x86_64)\nVERSION = 11\nPATCHLEVEL = 4\n"},
			Release{ID: "sles", VersionID: "11.4", PrettyName: "SUSE Linux Enterprise Server 11 (x86_64)", IDLike: []string{"suse"}, File: "/etc/SuSE-release"}, true},
		{"sles 11 ga", map[string]string{"/etc/SuSE-release": "SUSE Linux Enterprise Server 11 (x86_64)\nVERSION = 11\nPATCHLEVEL = 0\n"},
			Release{ID: "sles", VersionID: "11", PrettyName: "SUSE Linux Enterprise Server 11 (x86_64)", IDLike: []string{"suse"}, File: "/etc/SuSE-release"}, true},
		{"opensuse 13.1", map[string]string{"/etc/SuSE-release": "openSUSE 13.1 (x86_64)\nVERSION = 13.1\nCODENAME = Bottle\n"},
			Release{ID: "opensuse", VersionID: "13.1", PrettyName: "openSUSE 13.1 (x86_64)", IDLike: []string{"suse"}, File: "/etc/SuSE-release"}, true},
		{"other suse", map[string]string{"/etc/SuSE-release": "Some SUSE thing\n"},
			Release{ID: "suse-based", PrettyName: "Some SUSE thing", IDLike: []string{"suse"}, File: "/etc/SuSE-release"}, true},
		{"alpine", map[string]string{"/etc/alpine-release": "3.18.4\n"}, Release{ID: "alpine", VersionID: "3.18.4", File: "/etc/alpine-release"}, true},
		{"a directory is no release file", map[string]string{"/etc/os-release/": "", "/etc/alpine-release": "3.19.0\n"},
			Release{ID: "alpine", VersionID: "3.19.0", File: "/etc/alpine-release"}, true},
		{"a symlink out of the root is not followed", map[string]string{"/etc/redhat-release": "->../../../../../etc/hostname"}, Release{}, false},
		{"nothing", map[string]string{"/etc/hostname": "x\n"}, Release{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, found := Identify(image(t, tc.files))
			got.OSRelease = nil
			if found != tc.found || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Identify = %+v, %v\nwant       %+v, %v", got, found, tc.want, tc.found)
			}
		})
	}
}

func TestIdentifyKeepsOSReleaseFields(t *testing.T) {
	r, _ := Identify(image(t, map[string]string{"/etc/os-release": debianOSRelease + "HOME_URL=\"https://www.debian.org/\"\n"}))
	if r.OSRelease["HOME_URL"] != "https://www.debian.org/" || r.OSRelease["NAME"] != "Debian GNU/Linux" {
		t.Errorf("OSRelease = %v", r.OSRelease)
	}
}

func TestPackagesOf(t *testing.T) {
	rpmDB := map[string]string{"/var/lib/rpm/Packages": "db"}
	with := func(m map[string]string, more ...string) map[string]string {
		out := map[string]string{}
		for k, v := range m {
			out[k] = v
		}
		for _, p := range more {
			out[p] = "x"
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		rel   Release
		files map[string]string
		want  Packages
	}{
		{"centos 6 is yum, whatever else is installed", Release{ID: "centos", VersionID: "6.10"}, with(rpmDB, "/usr/bin/apt-get", "/var/lib/dpkg/status"),
			Packages{Format: "rpm", Manager: "yum", Database: "/var/lib/rpm/Packages"}},
		{"centos 6 without its database", Release{ID: "centos", VersionID: "6.10"}, nil, Packages{Format: "rpm", Manager: "yum"}},
		{"centos 8", Release{ID: "centos", VersionID: "8"}, with(rpmDB), Packages{Format: "rpm", Manager: "dnf", Database: "/var/lib/rpm/Packages"}},
		{"rhel 4", Release{ID: "rhel", VersionID: "4.9"}, nil, Packages{Format: "rpm", Manager: "up2date"}},
		{"rhel with no version: by the tools", Release{ID: "rhel"}, with(rpmDB, "/usr/bin/yum"), Packages{Format: "rpm", Manager: "yum", Database: "/var/lib/rpm/Packages"}},
		{"fedora 39 with dnf", Release{ID: "fedora", VersionID: "39"}, map[string]string{"/usr/bin/dnf": "x", "/usr/lib/sysimage/rpm/rpmdb.sqlite": "x"},
			Packages{Format: "rpm", Manager: "dnf", Database: "/usr/lib/sysimage/rpm/rpmdb.sqlite"}},
		{"fedora 39 without dnf", Release{ID: "fedora", VersionID: "39"}, nil, Packages{Format: "rpm", Manager: "yum"}},
		{"fedora 20", Release{ID: "fedora", VersionID: "20"}, with(nil, "/usr/bin/dnf"), Packages{Format: "rpm", Manager: "yum"}},
		{"debian", Release{ID: "debian", VersionID: "12"}, with(nil, "/var/lib/dpkg/status"), Packages{Format: "deb", Manager: "apt", Database: "/var/lib/dpkg/status"}},
		{"rocky by family and tools", Release{ID: "rocky", VersionID: "9.3", IDLike: []string{"rhel", "centos", "fedora"}}, with(nil, "/usr/bin/dnf", "/usr/bin/yum"),
			Packages{Format: "rpm", Manager: "dnf"}},
		{"amazon linux 2", Release{ID: "amzn", VersionID: "2", IDLike: []string{"centos", "rhel", "fedora"}}, with(rpmDB, "/usr/bin/yum"),
			Packages{Format: "rpm", Manager: "yum", Database: "/var/lib/rpm/Packages"}},
		{"opensuse leap", Release{ID: "opensuse-leap", VersionID: "15.5"}, with(nil, "/usr/lib/sysimage/rpm/Packages.db"),
			Packages{Format: "rpm", Manager: "zypper", Database: "/usr/lib/sysimage/rpm/Packages.db"}},
		{"sles 11", Release{ID: "sles", VersionID: "11.4"}, with(rpmDB), Packages{Format: "rpm", Manager: "zypper", Database: "/var/lib/rpm/Packages"}},
		{"arch", Release{ID: "arch"}, map[string]string{"/var/lib/pacman/local/": ""}, Packages{Format: "pacman", Manager: "pacman", Database: "/var/lib/pacman/local"}},
		{"manjaro", Release{ID: "manjaro", IDLike: []string{"arch"}}, nil, Packages{Format: "pacman", Manager: "pacman"}},
		{"alpine", Release{ID: "alpine", VersionID: "3.18.4"}, with(nil, "/lib/apk/db/installed"), Packages{Format: "apk", Manager: "apk", Database: "/lib/apk/db/installed"}},
		{"gentoo", Release{ID: "gentoo", VersionID: "2.14"}, map[string]string{"/var/db/pkg/": ""}, Packages{Format: "ebuild", Manager: "portage", Database: "/var/db/pkg"}},
		{"a database of the wrong kind is no database", Release{ID: "arch"}, with(nil, "/var/lib/pacman/local"), Packages{Format: "pacman", Manager: "pacman"}},
		{"unknown distribution: by its database", Release{ID: "imgbake-alt"}, with(nil, "/var/lib/dpkg/status", "/usr/bin/pacman"),
			Packages{Format: "deb", Manager: "apt", Database: "/var/lib/dpkg/status"}},
		{"unknown distribution with an rpm database", Release{ID: "x"}, with(rpmDB, "/usr/bin/zypper"), Packages{Format: "rpm", Manager: "zypper", Database: "/var/lib/rpm/Packages"}},
		{"unknown distribution: by its tools", Release{}, with(nil, "/usr/bin/pacman"), Packages{Manager: "pacman"}},
		{"nothing at all", Release{}, nil, Packages{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := PackagesOf(image(t, tc.files), tc.rel); got != tc.want {
				t.Errorf("PackagesOf = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// Every manager PackagesOf can name is one package steps drive or one of
// the names proto lists as reported but not driven.
func TestManagersAreKnown(t *testing.T) {
	known := []string{proto.PkgPortage, proto.PkgUp2date, proto.PkgURPMI, proto.PkgXBPS}
	for _, m := range proto.PackageManagers {
		known = append(known, m.Name)
	}
	ids := []string{"opensuse-tumbleweed"}
	for id := range formatOfID {
		ids = append(ids, id)
	}
	for _, m := range managerOfFormat {
		if !slices.Contains(known, m) {
			t.Errorf("format's manager %q is unknown to proto", m)
		}
	}
	img := image(t, map[string]string{"/usr/bin/dnf": "x"})
	for _, id := range ids {
		for _, v := range []string{"", "1", "4", "6", "9", "30"} {
			if m := managerOfID(img, Release{ID: id, VersionID: v}); m != "" && !slices.Contains(known, m) {
				t.Errorf("%s %s: manager %q is unknown to proto", id, v, m)
			}
		}
	}
}

func TestFamily(t *testing.T) {
	for _, tt := range []struct {
		id     string
		like   []string
		family string
	}{
		{"debian", nil, "debian"}, {"ubuntu", []string{"debian"}, "debian"}, {"rocky", []string{"rhel", "centos", "fedora"}, "rhel"},
		{"almalinux", []string{"rhel", "centos", "fedora"}, "rhel"}, {"opensuse-leap", []string{"suse", "opensuse"}, "suse"},
		{"alpine", nil, "alpine"}, {"pop", []string{"ubuntu", "debian"}, "debian"}, {"weird", nil, "weird"},
		{"centos", []string{"rhel", "fedora"}, "rhel"}, {"redhat-based", nil, "rhel"}, {"scientific", nil, "rhel"},
		{"suse-based", nil, "suse"}, {"sles", nil, "suse"}, {"arch", nil, "arch"}, {"gentoo", nil, "gentoo"}, {"", nil, ""},
	} {
		if got := Family(tt.id, tt.like); got != tt.family {
			t.Errorf("Family(%q, %v) = %q, want %q", tt.id, tt.like, got, tt.family)
		}
	}
}
