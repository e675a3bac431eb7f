package proto

// Package managers: what the agent reports as OSInfo.PackageManager. The
// host's package steps drive those in PackageManagers.
const (
	PkgApt    = "apt"
	PkgDNF    = "dnf"
	PkgYum    = "yum"
	PkgZypper = "zypper"
	PkgAPK    = "apk"
	PkgPacman = "pacman"
)

// Package managers the agent reports (as libguestfs's inspection does)
// but package steps cannot drive.
const (
	PkgPortage = "portage" // Gentoo
	PkgUp2date = "up2date" // RHEL 2 to 4
	PkgURPMI   = "urpmi"   // Mageia
	PkgXBPS    = "xbps"    // Void Linux
)

// PackageManager is a package manager and the regular file whose presence
// in the image says it is there.
type PackageManager struct {
	Name string
	Path string
}

// PackageManagers are the ones package steps drive. When neither the
// distribution nor a package database names the image's, they are looked
// for in this order: the first whose Path is a regular file of the image
// is the image's (apt before dnf before yum, for an image that has more
// than one).
var PackageManagers = []PackageManager{
	{PkgApt, "/usr/bin/apt-get"}, {PkgDNF, "/usr/bin/dnf"}, {PkgYum, "/usr/bin/yum"},
	{PkgZypper, "/usr/bin/zypper"}, {PkgAPK, "/sbin/apk"}, {PkgPacman, "/usr/bin/pacman"},
}

// Package formats (OSInfo.PackageFormat), libguestfs's names.
const (
	PkgFormatRPM    = "rpm"
	PkgFormatDeb    = "deb"
	PkgFormatPacman = "pacman"
	PkgFormatAPK    = "apk"
	PkgFormatEbuild = "ebuild"
	PkgFormatXBPS   = "xbps"
)
