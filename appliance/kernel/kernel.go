// Package kernel finds the host kernel that imgbake's VMs boot (the
// appliance, and the test images' verifier) and resolves the module files
// they load, dependencies first, from the kernel's modules.dep.
//
// Not u-root's pkg/kmodule: it loads modules on the running system rather
// than listing another kernel's, walks dependencies in parallel (no stable
// order, which the appliance's content key needs) and marks whatever the
// host has loaded as done.
package kernel

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/imgbake/imgbake/internal/vercmp"
)

// ErrNoKernel means no usable kernel was found or it cannot be read.
var ErrNoKernel = errors.New("no usable appliance kernel")

// Kernel is a kernel image and its module tree.
type Kernel struct {
	Image      string // vmlinuz
	Version    string // uname -r
	ModulesDir string // /lib/modules/VERSION
}

// Find picks the kernel: explicit path, $IMGBAKE_KERNEL, or the newest
// /boot/vmlinuz-*-cloud-amd64, then any /boot/vmlinuz-*. Its version is
// the file name's part after "vmlinuz-"; its modules are in
// $IMGBAKE_KERNEL_MODULES if set, else /lib/modules/VERSION, and must have
// a modules.dep.
func Find(explicit string) (Kernel, error) {
	path := explicit
	if path == "" {
		path = os.Getenv("IMGBAKE_KERNEL")
	}
	if path == "" {
		cands, _ := filepath.Glob("/boot/vmlinuz-*-cloud-amd64")
		if len(cands) == 0 {
			cands, _ = filepath.Glob("/boot/vmlinuz-*")
		}
		if len(cands) == 0 {
			return Kernel{}, fmt.Errorf("%w: no /boot/vmlinuz-* on this host; install one (Debian: apt-get install linux-image-cloud-amd64) or pass --kernel", ErrNoKernel)
		}
		sort.Slice(cands, func(i, j int) bool { return vercmp.Less(cands[i], cands[j]) })
		path = cands[len(cands)-1]
	}
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return Kernel{}, fmt.Errorf("%w: %s is not readable by this user (some distributions make kernels root-only): run as root, or `sudo chmod 0644 %s`, or pass --kernel with a readable copy", ErrNoKernel, path, path)
		}
		if errors.Is(err, fs.ErrNotExist) {
			return Kernel{}, fmt.Errorf("%w: %s does not exist; install a kernel (Debian: apt-get install linux-image-cloud-amd64) or pass --kernel", ErrNoKernel, path)
		}
		return Kernel{}, fmt.Errorf("%w: %v", ErrNoKernel, err)
	}
	f.Close()
	version := strings.TrimPrefix(filepath.Base(path), "vmlinuz-")
	k := Kernel{Image: path, Version: version, ModulesDir: os.Getenv("IMGBAKE_KERNEL_MODULES")}
	if k.ModulesDir == "" {
		k.ModulesDir = filepath.Join("/lib/modules", version)
	}
	if _, err := os.Stat(filepath.Join(k.ModulesDir, "modules.dep")); err != nil {
		return Kernel{}, fmt.Errorf("%w: kernel %s has no module tree at %s (install the matching linux-image package)", ErrNoKernel, path, k.ModulesDir)
	}
	return k, nil
}

// Modules is a kernel's modules.dep (and modules.builtin).
type Modules struct {
	Dir     string
	paths   map[string]string   // module name → path relative to Dir
	deps    map[string][]string // path → dependency paths
	builtin map[string]bool
}

// ModuleName is the name of a module file: no directory, no .ko and
// compression suffix, '_' for '-'.
func ModuleName(path string) string {
	n := filepath.Base(path)
	for _, ext := range []string{".xz", ".zst", ".gz"} {
		n = strings.TrimSuffix(n, ext)
	}
	return strings.ReplaceAll(strings.TrimSuffix(n, ".ko"), "-", "_")
}

// LoadModules reads the module index of the module tree dir.
func LoadModules(dir string) (*Modules, error) {
	m := &Modules{Dir: dir, paths: map[string]string{}, deps: map[string][]string{}, builtin: map[string]bool{}}
	f, err := os.Open(filepath.Join(dir, "modules.dep"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		mod, deps, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		m.paths[ModuleName(mod)] = mod
		m.deps[mod] = strings.Fields(deps)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if b, err := os.ReadFile(filepath.Join(dir, "modules.builtin")); err == nil {
		for _, l := range strings.Fields(string(b)) {
			m.builtin[ModuleName(l)] = true
		}
	}
	return m, nil
}

// Resolve returns the module files (relative to Dir) that load names
// ('-' or '_'), in load order: each after its dependencies. Built-in
// modules, names this kernel does not have and files already in seen are
// left out; the files returned are added to seen, so successive calls
// share a module once. seen may be nil.
func (m *Modules) Resolve(names []string, seen map[string]bool) []string {
	if seen == nil {
		seen = map[string]bool{}
	}
	var order []string
	var visit func(p string)
	visit = func(p string) {
		if seen[p] {
			return
		}
		seen[p] = true
		deps := m.deps[p]
		// modules.dep lists the deepest dependency last.
		for i := len(deps) - 1; i >= 0; i-- {
			visit(deps[i])
		}
		order = append(order, p)
	}
	for _, n := range names {
		n = strings.ReplaceAll(n, "-", "_")
		if m.builtin[n] {
			continue
		}
		if p, ok := m.paths[n]; ok {
			visit(p)
		}
	}
	return order
}
