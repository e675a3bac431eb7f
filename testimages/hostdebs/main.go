// Command hostdebs rebuilds packages installed on this host as .deb files,
// so that testimages/build.sh can install them into a Debian root when the
// Debian mirror cannot be reached (tests must build their images without a
// network). The host must run the root's Debian release on the root's
// architecture; hostdebs checks that.
//
// Usage:
//
//	hostdebs -root ROOT -work DIR PACKAGE...
//
// It takes the closure of the PACKAGEs' Pre-Depends and Depends on the host
// (for each dependency the first alternative installed on the host, a
// virtual package through the host's Provides, arch qualifiers such as
// ":any" ignored), leaves out what ROOT's dpkg database already satisfies,
// and rebuilds each remaining package from the host's dpkg database: its
// control fields (`dpkg-query -s` less the status fields), conffiles,
// maintainer scripts and other control files from /var/lib/dpkg/info, and
// its files as `dpkg-query -L` lists them, copied with their modes and
// owners. Versions in dependencies are not compared: dpkg checks them when
// it installs.
//
// DIR must be an existing empty directory: everything hostdebs writes is
// inside it (staging trees in DIR/stage, the packages in DIR/debs). ROOT is
// only read. On stdout it prints the install order, one batch per line (the
// .deb file names in DIR/debs, separated by spaces; packages that depend on
// each other in a cycle share a batch): `dpkg -i` each batch in turn, so
// that every Pre-Depends is configured before the package that needs it is
// unpacked.
package main

import (
	"bufio"
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// hostAdminDir is the host's dpkg database; its info directory holds each
// installed package's control files.
const hostAdminDir = "/var/lib/dpkg"

func main() {
	root := flag.String("root", "", "the Debian root the packages are for (read only)")
	work := flag.String("work", "", "an existing empty directory for the staging trees and the .debs")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: hostdebs -root ROOT -work DIR PACKAGE...\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *root == "" || *work == "" || flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	batches, err := run(*root, *work, flag.Args())
	if err != nil {
		fmt.Fprintln(os.Stderr, "hostdebs:", err)
		os.Exit(1)
	}
	for _, b := range batches {
		fmt.Println(strings.Join(b, " "))
	}
}

func run(root, work string, wanted []string) ([][]string, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("must run as root (the packages' files keep their owners)")
	}
	work, err := checkWorkDir(work)
	if err != nil {
		return nil, err
	}
	if err := checkSameRelease(root); err != nil {
		return nil, err
	}
	host, err := queryDatabase(hostAdminDir)
	if err != nil {
		return nil, err
	}
	target, err := queryDatabase(filepath.Join(root, "var/lib/dpkg"))
	if err != nil {
		return nil, err
	}
	pkgs, deps, err := closure(host, target, wanted)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(pkgs))
	for _, p := range pkgs {
		names = append(names, p.Name)
	}
	fmt.Fprintf(os.Stderr, "hostdebs: %d packages to rebuild from the host: %s\n", len(pkgs), strings.Join(names, " "))
	debDir := filepath.Join(work, "debs")
	stageDir := filepath.Join(work, "stage")
	for _, d := range []string{debDir, stageDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return nil, err
		}
	}
	debOf := map[string]string{}
	for _, p := range pkgs {
		deb, err := repack(p, filepath.Join(stageDir, p.Name), debDir)
		if err != nil {
			return nil, fmt.Errorf("rebuilding %s: %w", p.BinaryPackage, err)
		}
		debOf[p.Name] = filepath.Base(deb)
	}
	var batches [][]string
	for _, group := range installOrder(names, deps) {
		var b []string
		for _, n := range group {
			b = append(b, debOf[n])
		}
		batches = append(batches, b)
	}
	return batches, nil
}

// checkWorkDir returns the absolute path of work, which must be an
// existing empty directory (so nothing of value can be overwritten) other
// than the filesystem root.
func checkWorkDir(work string) (string, error) {
	abs, err := filepath.Abs(work)
	if err != nil {
		return "", err
	}
	resolved, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", fmt.Errorf("work directory: %w", err)
	}
	if resolved == "/" {
		return "", errors.New("the work directory must not be /")
	}
	entries, err := os.ReadDir(resolved)
	if err != nil {
		return "", fmt.Errorf("work directory: %w", err)
	}
	if len(entries) > 0 {
		return "", fmt.Errorf("work directory %s is not empty", resolved)
	}
	return resolved, nil
}

// checkSameRelease makes sure the host's packages fit root: the same
// Debian release (VERSION_CODENAME of os-release) and dpkg architecture.
func checkSameRelease(root string) error {
	hostOS, err := os.ReadFile("/etc/os-release")
	if err != nil {
		return err
	}
	rootOS, err := readOSRelease(root)
	if err != nil {
		return err
	}
	hostSuite, rootSuite := osReleaseField(hostOS, "VERSION_CODENAME"), osReleaseField(rootOS, "VERSION_CODENAME")
	if hostSuite == "" || hostSuite != rootSuite {
		return fmt.Errorf("the host runs %q, the root is %q (VERSION_CODENAME in os-release): the host's packages do not fit", hostSuite, rootSuite)
	}
	hostArch, err := output("dpkg", "--print-architecture")
	if err != nil {
		return err
	}
	rootArch, err := output("dpkg-query", "--admindir="+filepath.Join(root, "var/lib/dpkg"), "-W", "--showformat=${Architecture}", "dpkg")
	if err != nil {
		return err
	}
	if hostArch != rootArch {
		return fmt.Errorf("the host's dpkg architecture is %q, the root's %q: the host's packages do not fit", hostArch, rootArch)
	}
	return nil
}

// readOSRelease reads root's os-release (/etc/os-release, else
// /usr/lib/os-release), resolving a symlink inside root, never on the host.
func readOSRelease(root string) ([]byte, error) {
	for _, p := range []string{"/etc/os-release", "/usr/lib/os-release"} {
		file := filepath.Join(root, p)
		if target, err := os.Readlink(file); err == nil {
			if filepath.IsAbs(target) {
				file = filepath.Join(root, target)
			} else {
				file = filepath.Join(root, filepath.Dir(p), target)
			}
			if !strings.HasPrefix(file, filepath.Clean(root)+"/") {
				return nil, fmt.Errorf("%s points outside the root", filepath.Join(root, p))
			}
		}
		data, err := os.ReadFile(file)
		if err == nil {
			return data, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	return nil, fmt.Errorf("%s has no os-release", root)
}

// osReleaseField returns KEY's value in an os-release file, unquoted.
func osReleaseField(data []byte, key string) string {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if ok && k == key {
			return strings.Trim(v, `"'`)
		}
	}
	return ""
}

func output(name string, args ...string) (string, error) {
	var stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return strings.TrimSpace(string(out)), nil
}

// ---------------------------------------------------------------- database

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

// ---------------------------------------------------------------- repacking

// statusFields are dpkg-query -s fields that describe the installation,
// not the package: they do not belong in a control file.
var statusFields = map[string]bool{
	"Status": true, "Conffiles": true, "Config-Version": true,
	"Triggers-Pending": true, "Triggers-Awaited": true,
}

// controlFromStatus turns `dpkg-query -s` output into a control file.
func controlFromStatus(status []byte) []byte {
	var out bytes.Buffer
	keep := true
	for _, line := range strings.SplitAfter(string(status), "\n") {
		if line == "" || line == "\n" {
			continue
		}
		if line[0] != ' ' && line[0] != '\t' {
			name, _, _ := strings.Cut(line, ":")
			keep = !statusFields[name]
		}
		if keep {
			out.WriteString(line)
		}
	}
	if out.Len() > 0 && !bytes.HasSuffix(out.Bytes(), []byte("\n")) {
		out.WriteByte('\n')
	}
	return out.Bytes()
}

// controlScripts are the control files dpkg keeps in its info directory
// as PKG.NAME, executable ones first.
var controlScripts = []struct {
	name string
	mode uint32
}{
	{"preinst", 0o755}, {"postinst", 0o755}, {"prerm", 0o755}, {"postrm", 0o755}, {"config", 0o755},
	{"templates", 0o644}, {"triggers", 0o644}, {"shlibs", 0o644}, {"symbols", 0o644},
}

// repack stages p's files and control files under stage (created) and
// builds its .deb into debDir, returning the .deb's path.
func repack(p *pkgInfo, stage, debDir string) (string, error) {
	status, err := exec.Command("dpkg-query", "-s", p.BinaryPackage).Output()
	if err != nil {
		return "", fmt.Errorf("dpkg-query -s: %w", err)
	}
	list, err := exec.Command("dpkg-query", "-L", p.BinaryPackage).Output()
	if err != nil {
		return "", fmt.Errorf("dpkg-query -L: %w", err)
	}
	if err := os.Mkdir(stage, 0o755); err != nil {
		return "", err
	}
	s := &stager{base: stage}
	sums, missing, err := s.stageFiles(parseFileList(list))
	if err != nil {
		return "", err
	}
	if missing > 0 {
		fmt.Fprintf(os.Stderr, "hostdebs: %s: %d listed files are not on the host (left out)\n", p.BinaryPackage, missing)
	}
	control := filepath.Join(stage, "DEBIAN")
	if err := os.Mkdir(control, 0o755); err != nil {
		return "", err
	}
	if err := writeNew(filepath.Join(control, "control"), controlFromStatus(status), 0o644); err != nil {
		return "", err
	}
	if len(sums) > 0 {
		if err := writeNew(filepath.Join(control, "md5sums"), []byte(strings.Join(sums, "")), 0o644); err != nil {
			return "", err
		}
	}
	info := filepath.Join(hostAdminDir, "info", p.BinaryPackage)
	if conffiles, err := os.ReadFile(info + ".conffiles"); err == nil {
		if kept := s.presentConffiles(conffiles); len(kept) > 0 {
			if err := writeNew(filepath.Join(control, "conffiles"), kept, 0o644); err != nil {
				return "", err
			}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	for _, cs := range controlScripts {
		data, err := os.ReadFile(info + "." + cs.name)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		if err := writeNew(filepath.Join(control, cs.name), data, cs.mode); err != nil {
			return "", err
		}
	}
	version := p.Version
	if i := strings.IndexByte(version, ':'); i >= 0 {
		version = version[i+1:]
	}
	deb := filepath.Join(debDir, fmt.Sprintf("%s_%s_%s.deb", p.Name, version, p.Arch))
	// Not --root-owner-group: the files keep the owners they have on the
	// host. -Znone: the .debs are installed once and thrown away.
	if out, err := exec.Command("dpkg-deb", "--build", "-Znone", stage, deb).CombinedOutput(); err != nil {
		return "", fmt.Errorf("dpkg-deb --build: %v: %s", err, bytes.TrimSpace(out))
	}
	return deb, nil
}

// parseFileList returns the absolute paths of `dpkg-query -L` output (its
// diversion notes and the root "/." left out).
func parseFileList(out []byte) []string {
	var paths []string
	for _, line := range strings.Split(string(out), "\n") {
		if !strings.HasPrefix(line, "/") || line == "/." {
			continue
		}
		paths = append(paths, filepath.Clean(line))
	}
	return paths
}

// stager copies host files into the staging tree base. Every path it
// writes is inside base, reached through directories it made itself,
// never through a symlink, and never overwrites anything.
type stager struct {
	base string
}

// target maps the absolute host path p into the staging tree.
func (s *stager) target(p string) (string, error) {
	clean := filepath.Clean(p)
	if !filepath.IsAbs(clean) || clean == "/" {
		return "", fmt.Errorf("path %q is not an absolute file path", p)
	}
	t := filepath.Join(s.base, clean)
	if !strings.HasPrefix(t, s.base+"/") {
		return "", fmt.Errorf("path %q leaves the staging tree", p)
	}
	return t, nil
}

// mergedUsrAliases are the top-level directories that a merged-/usr
// system has as symlinks into /usr, while packages ship them as
// directories.
var mergedUsrAliases = map[string]bool{
	"/bin": true, "/sbin": true, "/lib": true, "/lib32": true, "/lib64": true, "/libx32": true, "/libo32": true,
}

// stageFiles copies paths (absolute host paths, as dpkg lists them) and
// returns the md5sums lines of the regular files and how many paths were
// missing on the host. A path that is a symlink on the host but was a
// directory in the package (a merged-/usr alias such as /lib, or one with
// listed paths below it) is staged as a directory: staged as a symlink, it
// would replace the root's own.
func (s *stager) stageFiles(paths []string) ([]string, int, error) {
	dirInPackage := map[string]bool{}
	for _, p := range paths {
		for d := filepath.Dir(p); d != "/"; d = filepath.Dir(d) {
			dirInPackage[d] = true
		}
	}
	for d := range mergedUsrAliases {
		dirInPackage[d] = true
	}
	var sums []string
	missing := 0
	for _, p := range paths {
		fi, err := os.Lstat(p)
		if errors.Is(err, os.ErrNotExist) {
			missing++
			continue
		}
		if err != nil {
			return nil, 0, err
		}
		if fi.Mode()&os.ModeSymlink != 0 && dirInPackage[p] {
			if fi, err = os.Stat(p); err != nil {
				return nil, 0, err
			}
		}
		switch {
		case fi.IsDir():
			err = s.dir(p, fi)
		case fi.Mode()&os.ModeSymlink != 0:
			err = s.symlink(p, fi)
		case fi.Mode().IsRegular():
			var sum string
			sum, err = s.file(p, fi)
			sums = append(sums, sum+"  "+strings.TrimPrefix(p, "/")+"\n")
		default:
			err = fmt.Errorf("%s: unsupported file type %v", p, fi.Mode().Type())
		}
		if err != nil {
			return nil, 0, err
		}
	}
	return sums, missing, nil
}

// parent makes sure the staging directory for p's parent exists (with the
// host's modes and owners), and returns p's staging path.
func (s *stager) parent(p string) (string, error) {
	t, err := s.target(p)
	if err != nil {
		return "", err
	}
	if d := filepath.Dir(p); d != "/" {
		fi, err := os.Stat(d) // follow: /lib of a merged-/usr host is a directory in packages
		if err != nil {
			return "", err
		}
		if err := s.dir(d, fi); err != nil {
			return "", err
		}
	}
	return t, nil
}

// dir stages the directory p with fi's mode and owner; an existing one
// (staged before) is left as it is, provided it is a real directory.
func (s *stager) dir(p string, fi os.FileInfo) error {
	t, err := s.parent(p)
	if err != nil {
		return err
	}
	if got, err := os.Lstat(t); err == nil {
		if !got.IsDir() {
			return fmt.Errorf("%s: staged as a non-directory already", p)
		}
		return nil
	}
	if err := os.Mkdir(t, 0o700); err != nil {
		return err
	}
	return setMeta(t, fi, false)
}

func (s *stager) symlink(p string, fi os.FileInfo) error {
	t, err := s.parent(p)
	if err != nil {
		return err
	}
	if _, err := os.Lstat(t); err == nil {
		return nil // listed twice
	}
	link, err := os.Readlink(p)
	if err != nil {
		return err
	}
	if err := os.Symlink(link, t); err != nil {
		return err
	}
	st := fi.Sys().(*syscall.Stat_t)
	return os.Lchown(t, int(st.Uid), int(st.Gid))
}

// file copies the regular file p and returns its MD5 in hex.
func (s *stager) file(p string, fi os.FileInfo) (string, error) {
	t, err := s.parent(p)
	if err != nil {
		return "", err
	}
	src, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer src.Close()
	dst, err := os.OpenFile(t, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return "", err
	}
	h := md5.New()
	_, err = io.Copy(io.MultiWriter(dst, h), src)
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("copying %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), setMeta(t, fi, true)
}

// setMeta gives the staged t the owner and exact mode bits (setuid,
// setgid, sticky included) of the host file described by fi, and a
// regular file its modification time.
func setMeta(t string, fi os.FileInfo, regular bool) error {
	st := fi.Sys().(*syscall.Stat_t)
	// chown before chmod: chown clears setuid and setgid.
	if err := os.Lchown(t, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	if err := syscall.Chmod(t, st.Mode&0o7777); err != nil {
		return fmt.Errorf("chmod %s: %w", t, err)
	}
	if regular {
		return os.Chtimes(t, time.Now(), fi.ModTime())
	}
	return nil
}

// presentConffiles keeps the lines of a conffiles file whose path (the
// last field; flags such as remove-on-upgrade come first) was staged:
// dpkg-deb refuses a conffile the package does not contain.
func (s *stager) presentConffiles(conffiles []byte) []byte {
	var out bytes.Buffer
	for _, line := range strings.Split(string(conffiles), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		t, err := s.target(f[len(f)-1])
		if err != nil {
			continue
		}
		if _, err := os.Lstat(t); err == nil {
			out.WriteString(line + "\n")
		}
	}
	return out.Bytes()
}

// writeNew creates the file p (which must not exist) with data and mode.
func writeNew(p string, data []byte, mode uint32) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return syscall.Chmod(p, mode)
}
