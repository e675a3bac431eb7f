package proto

// Package managers: what the agent reports as OSInfo.PackageManager and
// the host's package steps know how to drive.
const (
	PkgApt    = "apt"
	PkgDNF    = "dnf"
	PkgYum    = "yum"
	PkgZypper = "zypper"
	PkgAPK    = "apk"
	PkgPacman = "pacman"
)

// PackageManager is a package manager and the regular file whose presence
// in the image says it is there.
type PackageManager struct {
	Name string
	Path string
}

// PackageManagers are detected in this order: the first whose Path is a
// regular file of the image is the image's (apt before dnf before yum, for
// an image that has more than one).
var PackageManagers = []PackageManager{
	{PkgApt, "/usr/bin/apt-get"}, {PkgDNF, "/usr/bin/dnf"}, {PkgYum, "/usr/bin/yum"},
	{PkgZypper, "/usr/bin/zypper"}, {PkgAPK, "/sbin/apk"}, {PkgPacman, "/usr/bin/pacman"},
}
