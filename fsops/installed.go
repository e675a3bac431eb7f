package fsops

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"sort"
	"strings"
)

// InstalledPackage is one package of the image's package database.
type InstalledPackage struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Arch    string `json:"arch,omitempty"`
}

// PackageList is what the image's package database says is installed.
type PackageList struct {
	Database string             `json:"database"` // dpkg, rpm, pacman or apk
	Packages []InstalledPackage `json:"packages"`
}

// maxPackageDB bounds a package database file read from the image (a
// hostile image could offer anything).
const maxPackageDB = 256 << 20

// InstalledPackages reads the installed packages from the image's own
// package database: dpkg's status file, pacman's local database and apk's
// installed file are parsed here; the rpm database (Berkeley DB, NDB or
// SQLite by release) is asked through the image's own rpm.
func InstalledPackages(ctx context.Context, s Session) (PackageList, error) {
	switch {
	case existsFile(ctx, s, "/var/lib/dpkg/status"):
		data, err := ReadFile(ctx, s, "/var/lib/dpkg/status", maxPackageDB)
		if err != nil {
			return PackageList{}, err
		}
		return PackageList{Database: "dpkg", Packages: ParseDpkgStatus(data)}, nil
	case existsDir(ctx, s, "/var/lib/rpm") || existsDir(ctx, s, "/usr/lib/sysimage/rpm"):
		res, err := Exec(ctx, s, []string{"rpm", "-qa", "--qf", `%{NAME}\t%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\t%{ARCH}\n`}, RunOptions{})
		if err != nil {
			return PackageList{}, fmt.Errorf("listing the rpm database with the image's rpm: %w: %s", err, strings.TrimSpace(res.Stderr))
		}
		return PackageList{Database: "rpm", Packages: parseTabbed(res.Stdout)}, nil
	case existsDir(ctx, s, "/var/lib/pacman/local"):
		pkgs, err := pacmanPackages(ctx, s)
		return PackageList{Database: "pacman", Packages: pkgs}, err
	case existsFile(ctx, s, "/lib/apk/db/installed"):
		data, err := ReadFile(ctx, s, "/lib/apk/db/installed", maxPackageDB)
		if err != nil {
			return PackageList{}, err
		}
		return PackageList{Database: "apk", Packages: ParseApkInstalled(data)}, nil
	}
	return PackageList{}, fmt.Errorf("no package database found (dpkg, rpm, pacman or apk)")
}

func existsFile(ctx context.Context, s Session, path string) bool {
	st, err := s.Stat(ctx, path)
	return err == nil && st.Exists && fs.FileMode(st.Mode).IsRegular()
}

func existsDir(ctx context.Context, s Session, path string) bool {
	st, err := s.Stat(ctx, path)
	return err == nil && st.Exists && fs.FileMode(st.Mode).IsDir()
}

// ParseDpkgStatus lists the packages dpkg's status file marks installed
// (Status: ... installed), sorted by name and architecture.
func ParseDpkgStatus(data []byte) []InstalledPackage {
	var out []InstalledPackage
	for _, stanza := range stanzas(data) {
		status := strings.Fields(stanza["Status"])
		if stanza["Package"] == "" || len(status) != 3 || status[2] != "installed" {
			continue
		}
		out = append(out, InstalledPackage{Name: stanza["Package"], Version: stanza["Version"], Arch: stanza["Architecture"]})
	}
	return sortPackages(out)
}

// stanzas splits RFC 822-style paragraphs into their single-line fields
// (continuation lines are dropped: no field read here has them).
func stanzas(data []byte) []map[string]string {
	var out []map[string]string
	cur := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			if len(cur) > 0 {
				out = append(out, cur)
				cur = map[string]string{}
			}
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			continue
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			cur[k] = strings.TrimSpace(v)
		}
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// ParseApkInstalled lists the packages of apk's installed database: blocks
// of "X:value" lines, P the name, V the version, A the architecture.
func ParseApkInstalled(data []byte) []InstalledPackage {
	var out []InstalledPackage
	var cur InstalledPackage
	flush := func() {
		if cur.Name != "" {
			out = append(out, cur)
		}
		cur = InstalledPackage{}
	}
	for _, line := range strings.Split(string(data), "\n") {
		if line == "" {
			flush()
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch k {
		case "P":
			cur.Name = v
		case "V":
			cur.Version = v
		case "A":
			cur.Arch = v
		}
	}
	flush()
	return sortPackages(out)
}

// ParsePacmanDesc reads one package's desc file of pacman's local
// database: %NAME%, %VERSION% and %ARCH% sections, each followed by its
// value on the next line.
func ParsePacmanDesc(data []byte) (InstalledPackage, bool) {
	var p InstalledPackage
	lines := strings.Split(string(data), "\n")
	for i := 0; i+1 < len(lines); i++ {
		switch strings.TrimSpace(lines[i]) {
		case "%NAME%":
			p.Name = strings.TrimSpace(lines[i+1])
		case "%VERSION%":
			p.Version = strings.TrimSpace(lines[i+1])
		case "%ARCH%":
			p.Arch = strings.TrimSpace(lines[i+1])
		}
	}
	return p, p.Name != ""
}

func pacmanPackages(ctx context.Context, s Session) ([]InstalledPackage, error) {
	entries, err := s.ReadDir(ctx, "/var/lib/pacman/local")
	if err != nil {
		return nil, err
	}
	var out []InstalledPackage
	for _, e := range entries {
		if !fs.FileMode(e.Mode).IsDir() {
			continue
		}
		data, err := ReadFile(ctx, s, "/var/lib/pacman/local/"+e.Name+"/desc", 1<<20)
		if isNotExist(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if p, ok := ParsePacmanDesc(data); ok {
			out = append(out, p)
		}
	}
	return sortPackages(out), nil
}

// parseTabbed reads "name\tversion\tarch" lines.
func parseTabbed(s string) []InstalledPackage {
	var out []InstalledPackage
	for _, line := range strings.Split(s, "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 3 || f[0] == "" {
			continue
		}
		arch := f[2]
		if arch == "(none)" {
			arch = "" // gpg-pubkey and other rpm pseudo-packages
		}
		out = append(out, InstalledPackage{Name: f[0], Version: f[1], Arch: arch})
	}
	return sortPackages(out)
}

func sortPackages(p []InstalledPackage) []InstalledPackage {
	sort.Slice(p, func(i, j int) bool {
		if p[i].Name != p[j].Name {
			return p[i].Name < p[j].Name
		}
		return p[i].Arch < p[j].Arch
	})
	if p == nil {
		p = []InstalledPackage{}
	}
	return p
}
