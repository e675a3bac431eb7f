// Package distro identifies the Linux distribution of an OS root from the
// files it keeps about itself, and the package format and manager that go
// with it, the way libguestfs's inspection (virt-inspector) does: os-release
// first, then lsb-release, then each distribution's own release file
// (/etc/redhat-release, /etc/SuSE-release, /etc/debian_version, ...) for
// the guests too old to have os-release.
//
// Identifiers follow os-release's ID scheme whatever file they came from
// ("centos", "rhel", "fedora", "debian", "ubuntu", "opensuse", "sles",
// "arch", "alpine", "gentoo"), so an old CentOS reads like a new one.
//
// The agent reads a hostile image's files with it: every file is read
// through Image (bounded, regular files only) and parsed with regular
// expressions of linear cost. It imports nothing beyond the standard
// library, so the agent's static binary can use it.
package distro

import (
	"bufio"
	"bytes"
	"io/fs"
	"regexp"
	"strconv"
	"strings"
)

// Image is the view of an OS root that identification reads. Paths are
// absolute inside the image; an implementation resolves symlinks inside
// the image, never out of it, and reads only regular files.
type Image interface {
	// ReadFile returns at most limit bytes of the regular file at path.
	ReadFile(path string, limit int64) ([]byte, error)
	// Stat describes path, following symlinks.
	Stat(path string) (fs.FileMode, error)
}

// Release is what an OS root says it is.
type Release struct {
	ID         string   // os-release's ID scheme: "debian", "centos", ...
	VersionID  string   // "12", "6.10"; "" when the file names none
	PrettyName string   // the product name, when the file has more than a version
	IDLike     []string // os-release's ID_LIKE, or the family of a release file's distribution
	// File is the file the release was read from.
	File string
	// OSRelease holds every field of an os-release file (nil for the other
	// release files).
	OSRelease map[string]string
}

// Limits on what is read of a release file: these files are a few lines.
const (
	releaseFileLimit = 64 << 10
	maxNameLen       = 256 // a longer product name is cut
)

// releaseTest parses one release file; ok false means the file did not say
// enough and the next test is tried (libguestfs's linux_root_tests).
type releaseTest struct {
	file  string
	parse func(data []byte) (r Release, ok bool)
}

// releaseTests are tried in this order, which is libguestfs's: the files a
// distribution derived from another also has (an lsb-release on Ubuntu, a
// redhat-release on CentOS) come after the derived one's own.
var releaseTests = []releaseTest{
	{"/etc/os-release", parseOSReleaseFile},
	{"/usr/lib/os-release", parseOSReleaseFile},
	{"/etc/lsb-release", parseLSBRelease},
	{"/etc/oracle-release", matchRelease(oracleRelease)},
	{"/etc/centos-release", matchRelease(centosRelease)},
	{"/etc/redhat-release", parseRedHatRelease},
	{"/etc/debian_version", parseVersionFile("debian", nil)},
	{"/etc/arch-release", func([]byte) (Release, bool) { return Release{ID: "arch"}, true }},
	{"/etc/gentoo-release", parseGenericRelease("gentoo", nil)},
	{"/etc/SuSE-release", parseSuSERelease},
	{"/etc/alpine-release", parseVersionFile("alpine", nil)},
}

// ReleaseFiles are the files Identify reads, in order (for messages).
func ReleaseFiles() []string {
	out := make([]string, len(releaseTests))
	for i, t := range releaseTests {
		out[i] = t.file
	}
	return out
}

// Identify reads the OS root's release files in libguestfs's order and
// returns what the first one that names a distribution says. An os-release
// without an ID counts only when no other file names one. ok is false when
// the root has none of these files.
func Identify(img Image) (r Release, ok bool) {
	var idless *Release
	for _, t := range releaseTests {
		data, err := img.ReadFile(t.file, releaseFileLimit)
		if err != nil {
			continue
		}
		if r, ok := t.parse(data); ok {
			r.File = t.file
			return r, true
		}
		if idless == nil && strings.HasSuffix(t.file, "/os-release") {
			idless = &Release{File: t.file, OSRelease: ParseOSRelease(data)}
		}
	}
	if idless != nil {
		return *idless, true
	}
	return Release{}, false
}

// ParseOSRelease reads an os-release file's KEY=value lines; values may be
// quoted as in a shell.
func ParseOSRelease(data []byte) map[string]string {
	m := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), releaseFileLimit)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		if uq, err := strconv.Unquote(v); err == nil {
			v = uq
		} else {
			v = strings.Trim(v, `"'`)
		}
		m[k] = v
	}
	return m
}

func parseOSReleaseFile(data []byte) (Release, bool) {
	m := ParseOSRelease(data)
	if m["ID"] == "" {
		return Release{}, false
	}
	r := Release{ID: m["ID"], VersionID: m["VERSION_ID"], PrettyName: m["PRETTY_NAME"], OSRelease: m}
	if like := strings.Fields(m["ID_LIKE"]); len(like) > 0 {
		r.IDLike = like
	}
	return r, true
}

// lsbDistributions are the DISTRIB_IDs libguestfs believes; any other
// lsb-release (RHEL 3 ships one with nothing but LSB_VERSION) leaves the
// decision to the distribution's own release file.
var lsbDistributions = map[string]Release{
	"Ubuntu":    {ID: "ubuntu", IDLike: []string{"debian"}},
	"LinuxMint": {ID: "linuxmint", IDLike: []string{"ubuntu", "debian"}},
	"CoreOS":    {ID: "coreos"},
	"Mageia":    {ID: "mageia"},
}

func parseLSBRelease(data []byte) (Release, bool) {
	m := ParseOSRelease(data)
	r, ok := lsbDistributions[m["DISTRIB_ID"]]
	if !ok {
		return Release{}, false
	}
	r.IDLike = append([]string(nil), r.IDLike...)
	r.VersionID = majorMinor(m["DISTRIB_RELEASE"])
	r.PrettyName = cut(m["DISTRIB_DESCRIPTION"])
	return r, true
}

// A redHatPattern is one of libguestfs's regular expressions for a Red Hat
// style release line ("CentOS release 6.10 (Final)"): the first group is
// the major version, the second, if any, the minor one.
type redHatPattern struct {
	re     *regexp.Regexp
	id     string
	idLike []string
}

func redHatPatterns(name, id string, idLike ...string) []redHatPattern {
	return []redHatPattern{
		{regexp.MustCompile(name + `.*release (\d+).*Update (\d+)`), id, idLike},
		{regexp.MustCompile(name + `.*release (\d+)\.(\d+)`), id, idLike},
		{regexp.MustCompile(name + `.*release (\d+)`), id, idLike},
	}
}

var (
	fedoraRelease     = []redHatPattern{{regexp.MustCompile(`Fedora release (\d+)`), "fedora", nil}}
	rhelRelease       = redHatPatterns("Red Hat", "rhel", "fedora")
	centosRelease     = redHatPatterns("CentOS", "centos", "rhel", "fedora")
	scientificRelease = redHatPatterns("Scientific Linux", "scientific", "rhel", "fedora")
	oracleRelease     = redHatPatterns("Oracle Linux", "ol", "rhel", "fedora")
	// A redhat-release none of those match is a distribution derived
	// from Red Hat (libguestfs's "redhat-based").
	redHatBased = Release{ID: "redhat-based", IDLike: []string{"rhel", "fedora"}}
)

// matchRelease parses a release file whose first line must match one of
// patterns.
func matchRelease(patterns ...[]redHatPattern) func([]byte) (Release, bool) {
	return func(data []byte) (Release, bool) {
		line := firstLine(data)
		for _, ps := range patterns {
			for _, p := range ps {
				m := p.re.FindStringSubmatch(line)
				if m == nil {
					continue
				}
				v := number(m[1])
				if len(m) > 2 && v != "" {
					if minor := number(m[2]); minor != "" {
						v += "." + minor
					}
				}
				return Release{ID: p.id, VersionID: v, PrettyName: line, IDLike: append([]string(nil), p.idLike...)}, true
			}
		}
		return Release{}, false
	}
}

var parseKnownRedHat = matchRelease(fedoraRelease, rhelRelease, centosRelease, scientificRelease)

// parseRedHatRelease: any /etc/redhat-release is a Red Hat system; the
// patterns say which.
func parseRedHatRelease(data []byte) (Release, bool) {
	if r, ok := parseKnownRedHat(data); ok {
		return r, true
	}
	r := redHatBased
	r.IDLike = append([]string(nil), r.IDLike...)
	r.PrettyName = firstLine(data)
	r.VersionID = majorMinor(r.PrettyName)
	return r, true
}

var versionLine = regexp.MustCompile(`^\d{1,9}(\.\d{1,9})*$`)

// parseVersionFile reads a file that holds the version alone
// (/etc/debian_version "12.5", /etc/alpine-release "3.18.4"); a first line
// that is not a version ("bookworm/sid") is the product name instead.
func parseVersionFile(id string, idLike []string) func([]byte) (Release, bool) {
	return func(data []byte) (Release, bool) {
		line := firstLine(data)
		if line == "" {
			return Release{}, false
		}
		r := Release{ID: id, IDLike: idLike}
		if versionLine.MatchString(line) {
			r.VersionID = line
		} else {
			r.PrettyName = line
		}
		return r, true
	}
}

// parseGenericRelease reads a release file whose first line is the product
// name with a version in it ("Gentoo Base System release 2.14").
func parseGenericRelease(id string, idLike []string) func([]byte) (Release, bool) {
	return func(data []byte) (Release, bool) {
		line := firstLine(data)
		if line == "" {
			return Release{}, false
		}
		return Release{ID: id, IDLike: idLike, PrettyName: line, VersionID: majorMinor(line)}, true
	}
}

var (
	slesRelease       = regexp.MustCompile(`^SUSE (Linux|LINUX) Enterprise `)
	nldRelease        = regexp.MustCompile(`^Novell Linux Desktop `)
	openSUSERelease   = regexp.MustCompile(`^(openSUSE|SuSE Linux|SUSE LINUX) `)
	suseVersionLine   = regexp.MustCompile(`^VERSION = (\d+)`)
	susePatchLevel    = regexp.MustCompile(`^PATCHLEVEL = (\d+)`)
	majorMinorPattern = regexp.MustCompile(`(\d+)\.(\d+)`)
	majorPattern      = regexp.MustCompile(`(\d+)`)
)

// parseSuSERelease reads /etc/SuSE-release: the product name, then
// "VERSION = 11" and, on SLES, "PATCHLEVEL = 4".
func parseSuSERelease(data []byte) (Release, bool) {
	lines := strings.SplitN(string(data), "\n", 4)
	line := func(i int) string {
		if i < len(lines) {
			return cut(strings.TrimSpace(lines[i]))
		}
		return ""
	}
	product := line(0)
	if product == "" {
		return Release{}, false
	}
	r := Release{PrettyName: product, IDLike: []string{"suse"}}
	switch {
	case slesRelease.MatchString(product), nldRelease.MatchString(product):
		r.ID = "sles"
		if m := suseVersionLine.FindStringSubmatch(line(1)); m != nil {
			r.VersionID = number(m[1])
			if m := susePatchLevel.FindStringSubmatch(line(2)); m != nil && r.VersionID != "" {
				if p := number(m[1]); p != "" && p != "0" {
					r.VersionID += "." + p
				}
			}
		}
	case openSUSERelease.MatchString(product):
		r.ID = "opensuse"
		r.VersionID = majorMinor(line(1))
	default:
		r.ID = "suse-based"
	}
	return r, true
}

// majorMinor is the first "MAJOR.MINOR" in s, else the first number, as
// libguestfs's parse_version_from_major_minor finds it; "" when there is
// none.
func majorMinor(s string) string {
	if m := majorMinorPattern.FindStringSubmatch(s); m != nil {
		if major, minor := number(m[1]), number(m[2]); major != "" && minor != "" {
			return major + "." + minor
		}
	}
	if m := majorPattern.FindStringSubmatch(s); m != nil {
		return number(m[1])
	}
	return ""
}

// number is s when it is a decimal number of at most 9 digits, kept as
// written (Ubuntu's "10.04" stays that); "" for a longer one, which
// libguestfs's int_of_string would reject too.
func number(s string) string {
	if s == "" || len(s) > 9 || strings.Trim(s, "0123456789") != "" {
		return ""
	}
	return s
}

// firstLine is the file's first line, trimmed and cut to maxNameLen.
func firstLine(data []byte) string {
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		data = data[:i]
	}
	return cut(strings.TrimSpace(string(data)))
}

func cut(s string) string {
	if len(s) > maxNameLen {
		s = s[:maxNameLen]
	}
	return s
}
