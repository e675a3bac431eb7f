package fsops

import (
	"reflect"
	"testing"
)

func TestParseDpkgStatus(t *testing.T) {
	status := `Package: zlib1g
Status: install ok installed
Priority: optional
Architecture: amd64
Multi-Arch: same
Version: 1:1.2.13.dfsg-1
Description: compression library - runtime
 zlib is a library implementing the deflate compression method found
 .
 in gzip and PKZIP.

Package: removed-but-config
Status: deinstall ok config-files
Version: 1.0
Architecture: all

Package: base-files
Status: install ok installed
Architecture: amd64
Version: 12.4+deb12u5
`
	want := []InstalledPackage{
		{Name: "base-files", Version: "12.4+deb12u5", Arch: "amd64"},
		{Name: "zlib1g", Version: "1:1.2.13.dfsg-1", Arch: "amd64"},
	}
	if got := ParseDpkgStatus([]byte(status)); !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

func TestParseApkInstalled(t *testing.T) {
	db := "C:Q1abc=\nP:musl\nV:1.2.4-r2\nA:x86_64\nS:383152\n\nC:Q1def=\nP:busybox\nV:1.36.1-r5\nA:x86_64\n"
	want := []InstalledPackage{{"busybox", "1.36.1-r5", "x86_64"}, {"musl", "1.2.4-r2", "x86_64"}}
	if got := ParseApkInstalled([]byte(db)); !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

func TestParsePacmanDesc(t *testing.T) {
	desc := "%NAME%\nbash\n\n%VERSION%\n5.2.026-1\n\n%BASE%\nbash\n\n%ARCH%\nx86_64\n"
	got, ok := ParsePacmanDesc([]byte(desc))
	if want := (InstalledPackage{"bash", "5.2.026-1", "x86_64"}); !ok || got != want {
		t.Errorf("got %+v %v, want %+v", got, ok, want)
	}
	if _, ok := ParsePacmanDesc([]byte("%VERSION%\n1\n")); ok {
		t.Error("a desc without a name was accepted")
	}
}

func TestParseTabbed(t *testing.T) {
	out := "bash\t5.1.8-6.el9\tx86_64\ngpg-pubkey\t8483c65d-5ccc5b19\t(none)\nbroken line\nkernel\t1:5.14.0-70\tx86_64\n"
	want := []InstalledPackage{{"bash", "5.1.8-6.el9", "x86_64"}, {"gpg-pubkey", "8483c65d-5ccc5b19", ""}, {"kernel", "1:5.14.0-70", "x86_64"}}
	if got := parseTabbed(out); !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

// The package databases come from the image: hostile input.
func FuzzPackageDatabases(f *testing.F) {
	f.Add([]byte("Package: a\nStatus: install ok installed\nVersion: 1\n\n"))
	f.Add([]byte("P:a\nV:1\nA:x\n\n"))
	f.Add([]byte("%NAME%\na\n%VERSION%\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, p := range ParseDpkgStatus(data) {
			if p.Name == "" {
				t.Fatal("dpkg: a package without a name")
			}
		}
		for _, p := range ParseApkInstalled(data) {
			if p.Name == "" {
				t.Fatal("apk: a package without a name")
			}
		}
		if p, ok := ParsePacmanDesc(data); ok && p.Name == "" {
			t.Fatal("pacman: ok without a name")
		}
		_ = parseTabbed(string(data))
	})
}
