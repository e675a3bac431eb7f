package fsops

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"strings"

	"github.com/imgbake/imgbake/appliance/proto"
)

// A package repository is configured the way each family does it: apt a
// deb822 .sources file in sources.list.d with Signed-By naming a keyring
// in /etc/apt/keyrings; dnf and yum a .repo file in /etc/yum.repos.d,
// zypper one in /etc/zypp/repos.d, both with gpgkey naming a key under
// /etc/pki/rpm-gpg; pacman a [NAME] section of /etc/pacman.conf.

// RepoSpec is one package repository.
type RepoSpec struct {
	Name        string // the file and section name: letters, digits, '.', '_', '-'
	Description string // a human name; "" uses Name
	URL         string // the repository's base URL (apt URIs, rpm baseurl, pacman Server)
	// Key is the repository's OpenPGP signing key (ASCII-armored, or
	// binary for apt); nil: none of its own.
	Key []byte
	// Trusted turns signature checking off (apt trusted, rpm gpgcheck=0,
	// pacman SigLevel = Never); it excludes Key.
	Trusted bool
	// Suite and Components are apt's: Suite "" is a flat repository ("./").
	Suite      string
	Components []string
}

// RepoFile is one file a repository's configuration consists of.
type RepoFile struct {
	Path    string
	Content []byte
}

const (
	pacmanConf      = "/etc/pacman.conf"
	aptKeyrings     = "/etc/apt/keyrings"
	aptSourcesDir   = "/etc/apt/sources.list.d"
	rpmKeyDir       = "/etc/pki/rpm-gpg"
	yumReposDir     = "/etc/yum.repos.d"
	zypperReposDir  = "/etc/zypp/repos.d"
	armoredKeyBegin = "-----BEGIN PGP PUBLIC KEY BLOCK-----"
)

// isArmored reports whether key is an ASCII-armored OpenPGP key.
func isArmored(key []byte) bool {
	return bytes.HasPrefix(bytes.TrimLeft(key, " \t\r\n"), []byte(armoredKeyBegin))
}

// RenderRepo returns the files that configure spec for manager, except
// pacman's, whose repositories live in pacman.conf (see SetPacmanRepo).
func RenderRepo(manager string, spec RepoSpec) ([]RepoFile, error) {
	if spec.Trusted && spec.Key != nil {
		return nil, fmt.Errorf("repository %s: a key and trusted exclude each other", spec.Name)
	}
	desc := spec.Description
	if desc == "" {
		desc = spec.Name
	}
	switch manager {
	case proto.PkgApt:
		return renderApt(spec), nil
	case proto.PkgDNF, proto.PkgYum:
		return renderRPMRepo(yumReposDir, spec, desc, "")
	case proto.PkgZypper:
		return renderRPMRepo(zypperReposDir, spec, desc, "autorefresh=1\ntype=rpm-md\n")
	case "":
		return nil, ErrNoPackageManager
	}
	return nil, fmt.Errorf("repository %s: package manager %s: not supported by the repo step (apt, dnf, yum, zypper and pacman are)", spec.Name, manager)
}

func renderApt(spec RepoSpec) []RepoFile {
	var files []RepoFile
	var b strings.Builder
	suite := spec.Suite
	if suite == "" {
		suite = "./"
	}
	fmt.Fprintf(&b, "# %s (written by imgbake)\nTypes: deb\nURIs: %s\nSuites: %s\n", oneLine(spec.Description, spec.Name), spec.URL, suite)
	// A suite that is a path is a flat repository: it has no components.
	if !strings.HasSuffix(suite, "/") && len(spec.Components) == 0 {
		b.WriteString("Components: main\n")
	} else if len(spec.Components) > 0 {
		fmt.Fprintf(&b, "Components: %s\n", strings.Join(spec.Components, " "))
	}
	if spec.Key != nil {
		// apt reads a keyring by its extension: .asc armored, .gpg binary.
		keyring := aptKeyrings + "/" + spec.Name + ".gpg"
		if isArmored(spec.Key) {
			keyring = aptKeyrings + "/" + spec.Name + ".asc"
		}
		files = append(files, RepoFile{Path: keyring, Content: spec.Key})
		fmt.Fprintf(&b, "Signed-By: %s\n", keyring)
	}
	if spec.Trusted {
		b.WriteString("Trusted: yes\n")
	}
	return append(files, RepoFile{Path: aptSourcesDir + "/" + spec.Name + ".sources", Content: []byte(b.String())})
}

func renderRPMRepo(dir string, spec RepoSpec, desc, extra string) ([]RepoFile, error) {
	var files []RepoFile
	var b strings.Builder
	fmt.Fprintf(&b, "# written by imgbake\n[%s]\nname=%s\nbaseurl=%s\nenabled=1\n%s", spec.Name, oneLine(desc, spec.Name), spec.URL, extra)
	switch {
	case spec.Trusted:
		b.WriteString("gpgcheck=0\nrepo_gpgcheck=0\n")
	case spec.Key != nil:
		if !isArmored(spec.Key) {
			return nil, fmt.Errorf("repository %s: rpm wants an ASCII-armored key (%s ...); export it with gpg --armor --export", spec.Name, armoredKeyBegin)
		}
		key := rpmKeyDir + "/RPM-GPG-KEY-" + spec.Name
		files = append(files, RepoFile{Path: key, Content: spec.Key})
		fmt.Fprintf(&b, "gpgcheck=1\ngpgkey=file://%s\n", key)
	default:
		// The packages must be signed by a key rpm already has.
		b.WriteString("gpgcheck=1\n")
	}
	return append(files, RepoFile{Path: dir + "/" + spec.Name + ".repo", Content: []byte(b.String())}), nil
}

func oneLine(s, fallback string) string {
	s = strings.Join(strings.Fields(s), " ")
	if s == "" {
		return fallback
	}
	return s
}

// pacmanSection is spec's section of pacman.conf, header included.
func pacmanSection(spec RepoSpec) []string {
	lines := []string{"[" + spec.Name + "]"}
	if spec.Trusted {
		lines = append(lines, "SigLevel = Never")
	}
	// Otherwise pacman.conf's global SigLevel applies.
	return append(lines, "Server = "+spec.URL)
}

// SetPacmanRepo returns conf (a pacman.conf) with spec's section in it:
// an existing [NAME] section is replaced where it is (its comments kept),
// else the section is appended. changed is false when conf had it as wanted.
func SetPacmanRepo(conf string, spec RepoSpec) (out string, changed bool) {
	want := pacmanSection(spec)
	lines := strings.Split(strings.TrimSuffix(conf, "\n"), "\n")
	if conf == "" {
		lines = nil
	}
	start := -1
	for i, l := range lines {
		if strings.TrimSpace(l) == want[0] {
			start = i
			break
		}
	}
	if start < 0 {
		var b strings.Builder
		b.WriteString(conf)
		if conf != "" && !strings.HasSuffix(conf, "\n") {
			b.WriteString("\n")
		}
		if conf != "" {
			b.WriteString("\n")
		}
		b.WriteString(strings.Join(want, "\n") + "\n")
		return b.String(), true
	}
	// The section runs to the next header; its trailing blank and comment
	// lines belong to what follows.
	end := start + 1
	for end < len(lines) && !strings.HasPrefix(strings.TrimSpace(lines[end]), "[") {
		end++
	}
	var have []string
	for _, l := range lines[start+1 : end] {
		if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "#") {
			have = append(have, t)
		}
	}
	if strings.Join(have, "\n") == strings.Join(want[1:], "\n") {
		return conf, false
	}
	tail := end
	for tail > start+1 {
		t := strings.TrimSpace(lines[tail-1])
		if t != "" && !strings.HasPrefix(t, "#") {
			break
		}
		tail--
	}
	outLines := append(append(append([]string{}, lines[:start]...), want...), lines[tail:]...)
	return strings.Join(outLines, "\n") + "\n", true
}

// Repo configures spec as manager's repository in the image; ok when it
// is configured so already.
func Repo(ctx context.Context, s Session, manager string, spec RepoSpec) (Result, error) {
	if manager == proto.PkgPacman {
		return pacmanRepo(ctx, s, spec)
	}
	files, err := RenderRepo(manager, spec)
	if err != nil {
		return Result{}, err
	}
	var res Result
	for _, f := range files {
		dir := f.Path[:strings.LastIndexByte(f.Path, '/')]
		// No mode: an existing directory keeps its own.
		if _, err := Mkdir(ctx, s, dir, WriteOptions{}); err != nil {
			return Result{}, fmt.Errorf("repository %s: %w", spec.Name, err)
		}
		r, err := WriteFile(ctx, s, f.Path, bytes.NewReader(f.Content), WriteOptions{Mode: &repoFileMode, Owner: "0:0"})
		if err != nil {
			return Result{}, fmt.Errorf("repository %s: writing %s: %w", spec.Name, f.Path, err)
		}
		res.Changed = res.Changed || r.Changed
	}
	if manager == proto.PkgZypper && spec.Key != nil {
		// zypper trusts the keys in the rpm database and, non-interactive,
		// refuses any other; importing a key rpm has is a no-op.
		key := files[0].Path
		if _, err := Exec(ctx, s, []string{"rpm", "--import", key}, RunOptions{}); err != nil {
			return Result{}, fmt.Errorf("repository %s: rpm --import %s: %w", spec.Name, key, err)
		}
	}
	if res.Changed {
		res.Detail = files[len(files)-1].Path
	}
	return res, nil
}

func pacmanRepo(ctx context.Context, s Session, spec RepoSpec) (Result, error) {
	if spec.Key != nil {
		// Trusting a key takes pacman-key (--add, --lsign-key) in the image.
		return Result{}, fmt.Errorf("repository %s: pacman: a key is not supported by the repo step; use trusted: true, or add the key with pacman-key in a run step and leave key out", spec.Name)
	}
	conf, err := ReadFile(ctx, s, pacmanConf, 1<<20)
	if err != nil {
		return Result{}, fmt.Errorf("repository %s: %w", spec.Name, err)
	}
	out, changed := SetPacmanRepo(string(conf), spec)
	if !changed {
		return Result{}, nil
	}
	if _, err := WriteFile(ctx, s, pacmanConf, strings.NewReader(out), WriteOptions{}); err != nil {
		return Result{}, fmt.Errorf("repository %s: writing %s: %w", spec.Name, pacmanConf, err)
	}
	return Result{Changed: true, Detail: pacmanConf + " [" + spec.Name + "]"}, nil
}

var (
	repoFileMode fs.FileMode = 0o644
)
