package distro

import (
	"io/fs"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// memImage is an Image holding the same bytes at every release file, so
// one fuzz input reaches every parser in Identify's order.
type memImage struct{ data []byte }

func (m memImage) ReadFile(_ string, limit int64) ([]byte, error) {
	if int64(len(m.data)) > limit {
		return m.data[:limit], nil
	}
	return m.data, nil
}

func (m memImage) Stat(string) (fs.FileMode, error) { return 0, fs.ErrNotExist }

var fuzzVersion = regexp.MustCompile(`^\d{1,9}(\.\d{1,9})*$`)

// FuzzParseRelease feeds arbitrary bytes (what a hostile image may hold)
// to every release file parser and checks: no panic; a parser that
// accepts names a distribution (os-release may name any, the others only
// their own fixed IDs); a version from any other file than os-release is
// dotted decimal numbers; a product name is
// one line of bounded length; Identify returns what the first accepting
// parser returned, from its file.
func FuzzParseRelease(f *testing.F) {
	for _, s := range []string{
		"CentOS release 6.10 (Final)\n", "Red Hat Enterprise Linux AS release 4 (Nahant Update 9)\n", "Fedora release 20 (Heisenbug)",
		"SUSE Linux Enterprise Server 11 (x86_64)\nVERSION = 11\nPATCHLEVEL = 4\n", "openSUSE 13.1 (x86_64)\nVERSION = 13.1\n",
		"DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE=10.04\nDISTRIB_DESCRIPTION=\"Ubuntu 10.04.1 LTS\"\n", debianOSRelease,
		"12.15\n", "bookworm/sid", "Gentoo Base System release 2.14", "", "\n\n", "ID='a\nb'", "CentOS release 99999999999.1",
	} {
		f.Add([]byte(s))
	}
	knownIDs := []string{"ubuntu", "linuxmint", "coreos", "mageia", "ol", "centos", "fedora", "rhel", "scientific",
		"redhat-based", "debian", "arch", "gentoo", "sles", "opensuse", "suse-based", "alpine"}
	f.Fuzz(func(t *testing.T, data []byte) {
		var first *Release
		for _, tc := range releaseTests {
			r, ok := tc.parse(data)
			if !ok {
				continue
			}
			osRelease := strings.HasSuffix(tc.file, "/os-release")
			if r.ID == "" || !osRelease && !slices.Contains(knownIDs, r.ID) {
				t.Fatalf("%s: accepted with ID %q", tc.file, r.ID)
			}
			if !osRelease && r.VersionID != "" && !fuzzVersion.MatchString(r.VersionID) {
				t.Fatalf("%s: version %q", tc.file, r.VersionID)
			}
			if !osRelease && (len(r.PrettyName) > maxNameLen || strings.ContainsAny(r.PrettyName, "\n")) {
				t.Fatalf("%s: product name %q", tc.file, r.PrettyName)
			}
			if first == nil {
				r.File = tc.file
				first = &r
			}
		}
		got, found := Identify(memImage{data})
		switch {
		case first != nil && (!found || got.File != first.File || got.ID != first.ID || got.VersionID != first.VersionID):
			t.Fatalf("Identify = %+v, %v; the first parser to accept said %+v", got, found, *first)
		case first == nil && (!found || got.File != "/etc/os-release" || got.ID != ""):
			t.Fatalf("no parser accepted, yet Identify = %+v, %v (want the ID-less os-release)", got, found)
		}
	})
}
