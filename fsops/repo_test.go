package fsops

import (
	"strings"
	"testing"
)

const testArmoredKey = "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmDMEZQAAAB\n-----END PGP PUBLIC KEY BLOCK-----\n"

func TestRenderRepo(t *testing.T) {
	binaryKey := []byte{0x99, 0x01, 0x0d, 0x04}
	tests := []struct {
		name    string
		manager string
		spec    RepoSpec
		want    map[string]string // path -> content
		wantErr string
	}{
		{name: "apt suite with armored key", manager: "apt",
			spec: RepoSpec{Name: "example", Description: "Example  packages", URL: "https://pkgs.example.com/debian", Suite: "bookworm",
				Components: []string{"main", "contrib"}, Key: []byte(testArmoredKey)},
			want: map[string]string{
				"/etc/apt/keyrings/example.asc": testArmoredKey,
				"/etc/apt/sources.list.d/example.sources": "# Example packages (written by imgbake)\nTypes: deb\nURIs: https://pkgs.example.com/debian\n" +
					"Suites: bookworm\nComponents: main contrib\nSigned-By: /etc/apt/keyrings/example.asc\n",
			}},
		{name: "apt suite without components gets main, binary key is .gpg", manager: "apt",
			spec: RepoSpec{Name: "ex", URL: "http://h/debian", Suite: "stable", Key: binaryKey},
			want: map[string]string{
				"/etc/apt/keyrings/ex.gpg":           string(binaryKey),
				"/etc/apt/sources.list.d/ex.sources": "# ex (written by imgbake)\nTypes: deb\nURIs: http://h/debian\nSuites: stable\nComponents: main\nSigned-By: /etc/apt/keyrings/ex.gpg\n",
			}},
		{name: "apt flat trusted", manager: "apt",
			spec: RepoSpec{Name: "local", URL: "http://10.0.2.2:8080/", Trusted: true},
			want: map[string]string{
				"/etc/apt/sources.list.d/local.sources": "# local (written by imgbake)\nTypes: deb\nURIs: http://10.0.2.2:8080/\nSuites: ./\nTrusted: yes\n",
			}},
		{name: "dnf with key", manager: "dnf",
			spec: RepoSpec{Name: "example", Description: "Example", URL: "https://pkgs.example.com/fedora/$releasever/$basearch", Key: []byte(testArmoredKey)},
			want: map[string]string{
				"/etc/pki/rpm-gpg/RPM-GPG-KEY-example": testArmoredKey,
				"/etc/yum.repos.d/example.repo": "# written by imgbake\n[example]\nname=Example\nbaseurl=https://pkgs.example.com/fedora/$releasever/$basearch\nenabled=1\n" +
					"gpgcheck=1\ngpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-example\n",
			}},
		{name: "yum trusted", manager: "yum",
			spec: RepoSpec{Name: "local", URL: "file:///var/local/repo", Trusted: true},
			want: map[string]string{
				"/etc/yum.repos.d/local.repo": "# written by imgbake\n[local]\nname=local\nbaseurl=file:///var/local/repo\nenabled=1\ngpgcheck=0\nrepo_gpgcheck=0\n",
			}},
		{name: "zypper no key: keys rpm has", manager: "zypper",
			spec: RepoSpec{Name: "oss", URL: "http://download.example.org/oss"},
			want: map[string]string{
				"/etc/zypp/repos.d/oss.repo": "# written by imgbake\n[oss]\nname=oss\nbaseurl=http://download.example.org/oss\nenabled=1\nautorefresh=1\ntype=rpm-md\ngpgcheck=1\n",
			}},
		{name: "zypper with key", manager: "zypper",
			spec: RepoSpec{Name: "ex", URL: "http://h/r", Key: []byte(testArmoredKey)},
			want: map[string]string{
				"/etc/pki/rpm-gpg/RPM-GPG-KEY-ex": testArmoredKey,
				"/etc/zypp/repos.d/ex.repo":       "# written by imgbake\n[ex]\nname=ex\nbaseurl=http://h/r\nenabled=1\nautorefresh=1\ntype=rpm-md\ngpgcheck=1\ngpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-ex\n",
			}},
		{name: "rpm refuses a binary key", manager: "dnf", spec: RepoSpec{Name: "ex", URL: "http://h/r", Key: binaryKey}, wantErr: "ASCII-armored"},
		{name: "key and trusted", manager: "apt", spec: RepoSpec{Name: "ex", URL: "http://h/r", Key: binaryKey, Trusted: true}, wantErr: "exclude each other"},
		{name: "apk unsupported", manager: "apk", spec: RepoSpec{Name: "ex", URL: "http://h/r"}, wantErr: "not supported by the repo step"},
		{name: "no manager", manager: "", spec: RepoSpec{Name: "ex", URL: "http://h/r"}, wantErr: "no supported package manager"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			files, err := RenderRepo(tc.manager, tc.spec)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, f := range files {
				got[f.Path] = string(f.Content)
			}
			if len(got) != len(tc.want) {
				t.Errorf("files %v, want %d", keys(got), len(tc.want))
			}
			for p, want := range tc.want {
				if got[p] != want {
					t.Errorf("%s =\n%s\nwant\n%s", p, got[p], want)
				}
			}
		})
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

const archPacmanConf = `[options]
HoldPkg     = pacman glibc
Architecture = auto
SigLevel    = Required DatabaseOptional

[core]
Include = /etc/pacman.d/mirrorlist

#[custom]
#SigLevel = Optional TrustAll
#Server = file:///home/custompkgs
`

func TestSetPacmanRepo(t *testing.T) {
	local := RepoSpec{Name: "local", URL: "http://10.0.2.2:8000/", Trusted: true}
	tests := []struct {
		name        string
		conf        string
		spec        RepoSpec
		want        string
		wantChanged bool
	}{
		{name: "appended after the last section", conf: archPacmanConf, spec: local, wantChanged: true,
			want: archPacmanConf + "\n[local]\nSigLevel = Never\nServer = http://10.0.2.2:8000/\n"},
		{name: "present as wanted", conf: archPacmanConf + "\n[local]\nSigLevel = Never\nServer = http://10.0.2.2:8000/\n", spec: local,
			want: archPacmanConf + "\n[local]\nSigLevel = Never\nServer = http://10.0.2.2:8000/\n"},
		{name: "present with other spacing and a comment", conf: "[options]\n[local]\n# ours\n  SigLevel = Never\nServer = http://10.0.2.2:8000/\n\n[extra]\nInclude = x\n", spec: local,
			want: "[options]\n[local]\n# ours\n  SigLevel = Never\nServer = http://10.0.2.2:8000/\n\n[extra]\nInclude = x\n"},
		{name: "replaced in place, the sections after kept", conf: "[options]\n\n[local]\nServer = http://old/\n\n# extra follows\n[extra]\nInclude = x\n", spec: local, wantChanged: true,
			want: "[options]\n\n[local]\nSigLevel = Never\nServer = http://10.0.2.2:8000/\n\n# extra follows\n[extra]\nInclude = x\n"},
		{name: "no SigLevel without trusted: the global one applies", conf: "[options]\nSigLevel = Required", spec: RepoSpec{Name: "r", URL: "https://h/$repo/os/$arch"}, wantChanged: true,
			want: "[options]\nSigLevel = Required\n\n[r]\nServer = https://h/$repo/os/$arch\n"},
		{name: "empty file", conf: "", spec: local, wantChanged: true, want: "[local]\nSigLevel = Never\nServer = http://10.0.2.2:8000/\n"},
		{name: "commented example section is not ours", conf: "#[local]\n#Server = x\n", spec: local, wantChanged: true,
			want: "#[local]\n#Server = x\n\n[local]\nSigLevel = Never\nServer = http://10.0.2.2:8000/\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, changed := SetPacmanRepo(tc.conf, tc.spec)
			if got != tc.want || changed != tc.wantChanged {
				t.Errorf("SetPacmanRepo = %v,\n%s\nwant %v,\n%s", changed, got, tc.wantChanged, tc.want)
			}
			if again, changed := SetPacmanRepo(got, tc.spec); changed || again != got {
				t.Errorf("a second SetPacmanRepo changed it:\n%s", again)
			}
		})
	}
}

// FuzzSetPacmanRepo edits pacman.conf files an image may hold, whatever
// they contain: the result has the section exactly once, as wanted, and
// a second edit changes nothing.
func FuzzSetPacmanRepo(f *testing.F) {
	for _, seed := range []string{"", archPacmanConf, "[local]\nServer = http://old/\n", "[local]", "\n\n[local]\n#x\n\n[b]\n",
		"[options]\r\nSigLevel = Never\r\n", "[local]\n[local]\nServer = x\n", "  [local]  \n\tServer = http://10.0.2.2:8000/\n"} {
		f.Add(seed, true)
		f.Add(seed, false)
	}
	f.Fuzz(func(t *testing.T, conf string, trusted bool) {
		spec := RepoSpec{Name: "local", URL: "http://10.0.2.2:8000/", Trusted: trusted}
		out, _ := SetPacmanRepo(conf, spec)
		again, changed := SetPacmanRepo(out, spec)
		if changed || again != out {
			t.Fatalf("not idempotent:\n%q\nthen\n%q", out, again)
		}
		if !strings.Contains(out, "Server = http://10.0.2.2:8000/") {
			t.Fatalf("no Server line in %q", out)
		}
	})
}
