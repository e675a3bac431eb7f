package distro

import (
	"io/fs"
	"slices"
	"strconv"
	"strings"

	"github.com/imgbake/imgbake/appliance/proto"
)

// Packages is how an OS root installs software.
type Packages struct {
	Format  string // proto.PkgFormat*: "rpm", "deb", ...; "" when unknown
	Manager string // proto.Pkg*: "apt", "yum", "dnf", ...; "" when unknown
	// Database is the package database found in the image for Format
	// ("/var/lib/rpm/Packages"); "" when there is none.
	Database string
}

// packageDatabases are where each format keeps its database, newest
// location last; a database is a regular file unless it ends in '/'.
var packageDatabases = []struct {
	format string
	paths  []string
}{
	{proto.PkgFormatDeb, []string{"/var/lib/dpkg/status"}},
	{proto.PkgFormatRPM, []string{"/var/lib/rpm/Packages", "/var/lib/rpm/rpmdb.sqlite", "/var/lib/rpm/Packages.db",
		"/usr/lib/sysimage/rpm/Packages", "/usr/lib/sysimage/rpm/rpmdb.sqlite", "/usr/lib/sysimage/rpm/Packages.db"}},
	{proto.PkgFormatPacman, []string{"/var/lib/pacman/local/"}},
	{proto.PkgFormatAPK, []string{"/lib/apk/db/installed", "/usr/lib/apk/db/installed"}},
	{proto.PkgFormatEbuild, []string{"/var/db/pkg/"}},
	{proto.PkgFormatXBPS, []string{"/var/db/xbps/"}},
}

// formatOfID is libguestfs's check_package_format for the IDs it knows.
var formatOfID = map[string]string{
	"altlinux": proto.PkgFormatRPM, "centos": proto.PkgFormatRPM, "fedora": proto.PkgFormatRPM,
	"mageia": proto.PkgFormatRPM, "neokylin": proto.PkgFormatRPM, "opensuse": proto.PkgFormatRPM,
	"ol": proto.PkgFormatRPM, "redhat-based": proto.PkgFormatRPM, "rhel": proto.PkgFormatRPM,
	"scientific": proto.PkgFormatRPM, "sles": proto.PkgFormatRPM, "sled": proto.PkgFormatRPM,
	"suse-based": proto.PkgFormatRPM,
	"debian":     proto.PkgFormatDeb, "kali": proto.PkgFormatDeb, "linuxmint": proto.PkgFormatDeb, "ubuntu": proto.PkgFormatDeb,
	"arch": proto.PkgFormatPacman, "gentoo": proto.PkgFormatEbuild, "alpine": proto.PkgFormatAPK, "void": proto.PkgFormatXBPS,
}

// formatOfFamily covers the IDs libguestfs does not know (rocky, amzn,
// manjaro, ...) by their family.
var formatOfFamily = map[string]string{
	"debian": proto.PkgFormatDeb, "rhel": proto.PkgFormatRPM, "suse": proto.PkgFormatRPM,
	"arch": proto.PkgFormatPacman, "alpine": proto.PkgFormatAPK, "gentoo": proto.PkgFormatEbuild, "void": proto.PkgFormatXBPS,
}

// managerOfFormat is the manager a format implies, where only one goes
// with it; rpm's depends on the distribution.
var managerOfFormat = map[string]string{
	proto.PkgFormatDeb: proto.PkgApt, proto.PkgFormatPacman: proto.PkgPacman, proto.PkgFormatAPK: proto.PkgAPK,
	proto.PkgFormatEbuild: proto.PkgPortage, proto.PkgFormatXBPS: proto.PkgXBPS,
}

// rpmManagers are looked for, in this order, on an rpm distribution whose
// manager its ID and version do not settle.
var rpmManagers = []proto.PackageManager{
	{Name: proto.PkgDNF, Path: "/usr/bin/dnf"}, {Name: proto.PkgYum, Path: "/usr/bin/yum"}, {Name: proto.PkgZypper, Path: "/usr/bin/zypper"},
}

// PackagesOf says how the OS root r describes installs software: the
// format and manager from its distribution and version as libguestfs's
// check_package_format and check_package_management decide them (CentOS 6
// uses yum whatever else is installed), else from its family; for an
// unknown distribution, from the package database the image holds; only
// then from which package tool is installed.
func PackagesOf(img Image, r Release) Packages {
	family := Family(r.ID, r.IDLike)
	p := Packages{Format: formatOfID[r.ID]}
	if p.Format == "" {
		p.Format = formatOfFamily[family]
	}
	if p.Format == "" {
		p.Format, p.Database = anyDatabase(img)
	} else {
		p.Database = database(img, p.Format)
	}
	p.Manager = managerOfID(img, r)
	if p.Manager == "" {
		p.Manager = managerOfFormat[p.Format]
	}
	if p.Manager == "" && p.Format == proto.PkgFormatRPM {
		p.Manager = firstPresent(img, rpmManagers)
	}
	if p.Manager == "" {
		p.Manager = firstPresent(img, proto.PackageManagers)
	}
	return p
}

// managerOfID is libguestfs's check_package_management: by ID and major
// version; "" where it has no rule (and where it gives up on a version it
// could not parse).
func managerOfID(img Image, r Release) string {
	major := majorOf(r.VersionID)
	switch r.ID {
	case "fedora":
		switch {
		case major >= 22 && isRegular(img, "/usr/bin/dnf"):
			return proto.PkgDNF
		case major >= 1:
			return proto.PkgYum
		}
	case "centos", "ol", "redhat-based", "rhel", "scientific":
		switch {
		case major >= 8:
			return proto.PkgDNF
		case major >= 5:
			return proto.PkgYum
		case major >= 2:
			return proto.PkgUp2date
		}
	case "neokylin":
		return proto.PkgDNF
	case "altlinux", "debian", "kali", "linuxmint", "ubuntu":
		return proto.PkgApt
	case "arch":
		return proto.PkgPacman
	case "gentoo":
		return proto.PkgPortage
	case "mageia":
		return proto.PkgURPMI
	case "opensuse", "sles", "sled", "suse-based":
		return proto.PkgZypper
	case "alpine":
		return proto.PkgAPK
	case "void":
		return proto.PkgXBPS
	}
	if strings.HasPrefix(r.ID, "opensuse-") {
		return proto.PkgZypper
	}
	return ""
}

// majorOf is the leading number of a version ("6.10" is 6); 0 when there
// is none.
func majorOf(v string) int {
	end := 0
	for end < len(v) && end < 9 && v[end] >= '0' && v[end] <= '9' {
		end++
	}
	n, _ := strconv.Atoi(v[:end])
	return n
}

// database is the first database of format that the image holds.
func database(img Image, format string) string {
	for _, d := range packageDatabases {
		if d.format != format {
			continue
		}
		for _, p := range d.paths {
			dir, isDir := strings.CutSuffix(p, "/")
			if isDir && isDirectory(img, dir) || !isDir && isRegular(img, p) {
				return dir
			}
		}
	}
	return ""
}

// anyDatabase finds the package database of an image whose distribution
// says nothing, the formats in packageDatabases' order.
func anyDatabase(img Image) (format, path string) {
	for _, d := range packageDatabases {
		if p := database(img, d.format); p != "" {
			return d.format, p
		}
	}
	return "", ""
}

func firstPresent(img Image, managers []proto.PackageManager) string {
	i := slices.IndexFunc(managers, func(m proto.PackageManager) bool { return isRegular(img, m.Path) })
	if i < 0 {
		return ""
	}
	return managers[i].Name
}

func isRegular(img Image, p string) bool {
	m, err := img.Stat(p)
	return err == nil && m.IsRegular()
}

func isDirectory(img Image, p string) bool {
	m, err := img.Stat(p)
	return err == nil && m&fs.ModeType == fs.ModeDir
}
