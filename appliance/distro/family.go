package distro

// families maps distribution IDs to the family recipes test with
// os.family.
var families = map[string]string{
	"debian": "debian", "ubuntu": "debian", "linuxmint": "debian", "raspbian": "debian", "kali": "debian",
	"rhel": "rhel", "fedora": "rhel", "centos": "rhel", "rocky": "rhel", "almalinux": "rhel", "ol": "rhel", "amzn": "rhel",
	"scientific": "rhel", "redhat-based": "rhel",
	"suse": "suse", "opensuse": "suse", "sles": "suse", "sled": "suse", "opensuse-leap": "suse", "opensuse-tumbleweed": "suse",
	"suse-based": "suse",
	"alpine":     "alpine", "arch": "arch", "manjaro": "arch", "gentoo": "gentoo", "void": "void",
}

// Family maps an os-release ID and ID_LIKE to a family name (debian, rhel,
// suse, alpine, arch, gentoo, ...): the ID's own family, else that of the
// first ID_LIKE entry that has one, else the ID itself.
func Family(id string, idLike []string) string {
	if f, ok := families[id]; ok {
		return f
	}
	for _, l := range idLike {
		if f, ok := families[l]; ok {
			return f
		}
	}
	return id
}
