package main

// The dpkg databases of the host and the root, and what the root lacks.

import (
	"bytes"
	"fmt"
	"os/exec"
	"sort"
	"strings"
)

// pkgInfo is an installed package.
type pkgInfo struct {
	Name string
	// BinaryPackage is how dpkg names it: NAME:ARCH for Multi-Arch: same
	// packages, else NAME (also the prefix of its files in the info directory).
	BinaryPackage string
	Arch          string
	Version       string
	Provides      []string
	PreDepends    string
	Depends       string
}

// database is the installed packages of one dpkg database.
type database struct {
	pkgs map[string]*pkgInfo
	// providers maps a virtual package to the installed packages providing it.
	providers map[string][]string
}

// queryFormat is one line per package for parseDatabase.
const queryFormat = "${binary:Package}\t${Package}\t${Architecture}\t${Version}\t${db:Status-Abbrev}\t${Provides}\t${Pre-Depends}\t${Depends}\n"

// queryDatabase lists the installed packages of the dpkg database in adminDir.
func queryDatabase(adminDir string) (*database, error) {
	var stderr bytes.Buffer
	cmd := exec.Command("dpkg-query", "--admindir="+adminDir, "-W", "--showformat="+queryFormat)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("dpkg-query --admindir=%s -W: %v: %s", adminDir, err, bytes.TrimSpace(stderr.Bytes()))
	}
	return parseDatabase(out)
}

// parseDatabase reads queryFormat lines; only fully installed packages
// ("ii") count.
func parseDatabase(out []byte) (*database, error) {
	db := &database{pkgs: map[string]*pkgInfo{}, providers: map[string][]string{}}
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		if line == "" {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) != 8 {
			return nil, fmt.Errorf("dpkg-query: unexpected line %q", line)
		}
		if strings.TrimSpace(f[4]) != "ii" {
			continue
		}
		p := &pkgInfo{BinaryPackage: f[0], Name: f[1], Arch: f[2], Version: f[3], PreDepends: f[6], Depends: f[7]}
		if old, dup := db.pkgs[p.Name]; dup {
			return nil, fmt.Errorf("%s is installed for two architectures (%s, %s); not supported", p.Name, old.Arch, p.Arch)
		}
		for _, group := range parseDepends(f[5]) {
			p.Provides = append(p.Provides, group...)
		}
		db.pkgs[p.Name] = p
		for _, v := range p.Provides {
			db.providers[v] = append(db.providers[v], p.Name)
		}
	}
	for _, names := range db.providers {
		sort.Strings(names)
	}
	return db, nil
}

// parseDepends splits a dependency field into its comma-separated groups
// of "|" alternatives, each reduced to the package name: version
// constraints, architecture qualifiers (":any") and restrictions go.
func parseDepends(field string) [][]string {
	var groups [][]string
	for _, g := range strings.Split(field, ",") {
		var alts []string
		for _, a := range strings.Split(g, "|") {
			a = strings.TrimSpace(a)
			if i := strings.IndexAny(a, " ([<"); i >= 0 {
				a = a[:i]
			}
			if i := strings.IndexByte(a, ':'); i >= 0 {
				a = a[:i]
			}
			if a != "" {
				alts = append(alts, a)
			}
		}
		if len(alts) > 0 {
			groups = append(groups, alts)
		}
	}
	return groups
}

// satisfies reports whether the database has name installed or provided.
func (db *database) satisfies(name string) bool {
	return db.pkgs[name] != nil || len(db.providers[name]) > 0
}

// pick is the installed package that stands for name: itself, else the
// first of its providers.
func (db *database) pick(name string) *pkgInfo {
	if p := db.pkgs[name]; p != nil {
		return p
	}
	if prov := db.providers[name]; len(prov) > 0 {
		return db.pkgs[prov[0]]
	}
	return nil
}

// closure returns the host packages that wanted needs and target lacks,
// sorted by name, and for each the names of those among them it depends on.
func closure(host, target *database, wanted []string) ([]*pkgInfo, map[string][]string, error) {
	deps := map[string][]string{}
	need := map[string]*pkgInfo{}
	var queue []*pkgInfo
	add := func(p *pkgInfo) {
		if need[p.Name] == nil {
			need[p.Name] = p
			queue = append(queue, p)
		}
	}
	for _, w := range wanted {
		if target.satisfies(w) {
			continue
		}
		p := host.pick(w)
		if p == nil {
			return nil, nil, fmt.Errorf("%s is not installed on the host", w)
		}
		add(p)
	}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, group := range parseDepends(p.PreDepends + ", " + p.Depends) {
			if anySatisfied(target, group) {
				continue
			}
			var dep *pkgInfo
			for _, alt := range group {
				if dep = host.pick(alt); dep != nil {
					break
				}
			}
			if dep == nil {
				return nil, nil, fmt.Errorf("%s depends on %s, which neither the host nor the root has installed", p.Name, strings.Join(group, " | "))
			}
			if target.satisfies(dep.Name) {
				continue
			}
			add(dep)
			if dep.Name != p.Name {
				deps[p.Name] = append(deps[p.Name], dep.Name)
			}
		}
	}
	pkgs := make([]*pkgInfo, 0, len(need))
	for _, p := range need {
		pkgs = append(pkgs, p)
	}
	sort.Slice(pkgs, func(i, j int) bool { return pkgs[i].Name < pkgs[j].Name })
	return pkgs, deps, nil
}

func anySatisfied(db *database, group []string) bool {
	for _, alt := range group {
		if db.satisfies(alt) {
			return true
		}
	}
	return false
}

// installOrder groups names into the strongly connected components of the
// dependency graph (Tarjan), dependencies first: a group depends only on
// itself and earlier groups. Names in a group are sorted.
func installOrder(names []string, deps map[string][]string) [][]string {
	index := map[string]int{}
	low := map[string]int{}
	onStack := map[string]bool{}
	var stack []string
	var groups [][]string
	next := 0
	var visit func(n string)
	visit = func(n string) {
		index[n], low[n] = next, next
		next++
		stack = append(stack, n)
		onStack[n] = true
		ds := append([]string(nil), deps[n]...)
		sort.Strings(ds)
		for _, d := range ds {
			if _, seen := index[d]; !seen {
				visit(d)
				low[n] = min(low[n], low[d])
			} else if onStack[d] {
				low[n] = min(low[n], index[d])
			}
		}
		if low[n] == index[n] {
			var g []string
			for {
				top := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				onStack[top] = false
				g = append(g, top)
				if top == n {
					break
				}
			}
			sort.Strings(g)
			groups = append(groups, g)
		}
	}
	sorted := append([]string(nil), names...)
	sort.Strings(sorted)
	for _, n := range sorted {
		if _, seen := index[n]; !seen {
			visit(n)
		}
	}
	return groups
}
