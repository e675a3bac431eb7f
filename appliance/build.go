package appliance

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/u-root/u-root/pkg/cpio"

	"github.com/imgbake/imgbake/appliance/kernel"
	"github.com/imgbake/imgbake/appliance/proto"
)

//go:embed agentbin
var agentFS embed.FS

// ErrNoKernel means no usable kernel was found or it cannot be read.
var ErrNoKernel = kernel.ErrNoKernel

// ErrNoAgent means this imgbake binary was built without its agent.
var ErrNoAgent = errors.New("imgbake was built without its appliance agent (build it with `make`)")

// AgentBinary returns the static agent: $IMGBAKE_AGENT if set, else the copy
// embedded at build time.
func AgentBinary() ([]byte, error) {
	if p := os.Getenv("IMGBAKE_AGENT"); p != "" {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("IMGBAKE_AGENT: %w", err)
		}
		return b, nil
	}
	b, err := agentFS.ReadFile("agentbin/imgbake-agent")
	if err != nil {
		return nil, ErrNoAgent
	}
	return b, nil
}

// moduleGroups are the kernel modules the appliance may need, by the group
// the agent loads them in: "boot" at start, the others on first use.
var moduleGroups = []struct {
	group   string
	modules []string
}{
	{proto.ModulesBoot, []string{"virtio_pci", "virtio_blk", "virtio_console", "virtio_scsi", "sd_mod", "ext4", "crc32c_generic",
		// virtio_rng feeds the guest CRNG from the host so getrandom() in the
		// agent and in image tools (ssh-keygen, openssl) does not stall.
		"virtio_rng"}},
	{"xfs", []string{"xfs"}},
	{"btrfs", []string{"btrfs"}},
	{"vfat", []string{"vfat", "nls_cp437", "nls_ascii", "nls_utf8", "nls_iso8859-1"}},
	{"ext4", []string{"ext4"}},
	{proto.ModulesDM, []string{"dm_mod"}},
	// dm-crypt and the modes LUKS volumes use: AES and CBC are built in,
	// xts needs ecb, essiv is for old aes-cbc-essiv:sha256 LUKS1 volumes.
	{proto.ModulesCrypt, []string{"dm_crypt", "ecb", "xts", "essiv"}},
	{proto.ModulesMD, []string{"md_mod", "linear", "raid0", "raid1", "raid10"}},
	{proto.ModulesMDParity, []string{"raid456"}},
	{proto.ModulesNet, []string{"virtio_net"}},
}

// Kernel is the kernel image and its module tree.
type Kernel = kernel.Kernel

// FindKernel picks the kernel (kernel.Find): explicit path,
// $IMGBAKE_KERNEL, or the newest /boot/vmlinuz-*-cloud-amd64, then any
// /boot/vmlinuz-*.
func FindKernel(explicit string) (Kernel, error) { return kernel.Find(explicit) }

// resolveGroups lists each group's module files, dependencies first. The
// boot group is loaded before any other, so the others leave out what it
// has; but each of them lists all its other dependencies, even those it
// shares with another group (libcrc32c: xfs and btrfs), as either may be
// loaded first or alone.
func resolveGroups(idx *kernel.Modules) ([]groupFiles, error) {
	var groups []groupFiles
	boot := map[string]bool{}
	for _, g := range moduleGroups {
		seen := boot
		if g.group != proto.ModulesBoot {
			seen = maps.Clone(boot)
		}
		files, err := resolveModules(idx, g.modules, seen)
		if err != nil {
			return nil, err
		}
		groups = append(groups, groupFiles{g.group, files})
	}
	return groups, nil
}

// resolveModules returns the module files for names, dependencies first,
// skipping built-ins and anything already in seen.
func resolveModules(idx *kernel.Modules, names []string, seen map[string]bool) ([]string, error) {
	order := idx.Resolve(names, seen)
	for _, p := range order {
		if strings.HasSuffix(p, ".xz") || strings.HasSuffix(p, ".zst") || strings.HasSuffix(p, ".gz") {
			return nil, fmt.Errorf("module %s is compressed; the appliance needs uncompressed modules", p)
		}
	}
	return order, nil
}

// Appliance is a built appliance: kernel plus our initramfs.
type Appliance struct {
	Kernel    Kernel
	Initramfs string
	Key       string // content hash: kernel, agent, modules
	Dir       string // cache directory of this build
	Size      int64  // initramfs bytes
	Modules   int
	Built     bool // built now rather than found in the cache
	// RescueInitramfs is the initramfs plus the rescue tools (see
	// rescue.go), for commands that need them (fsck, the rescue shell):
	// the tools make the initramfs twice as big, which costs boot time.
	RescueInitramfs string
	RescueSize      int64
	Rescue          RescueInfo
}

// WithRescueTools returns a copy of a whose initramfs carries the rescue
// tools.
func (a *Appliance) WithRescueTools() *Appliance {
	c := *a
	c.Initramfs, c.Size = a.RescueInitramfs, a.RescueSize
	return &c
}

// groupFiles are the module files of one load group.
type groupFiles struct {
	group string
	files []string
}

// Manifest is stored next to the initramfs and shown by `appliance info`.
type Manifest struct {
	Key         string     `json:"key"`
	Kernel      string     `json:"kernel"`
	KernelVer   string     `json:"kernel_version"`
	AgentSHA256 string     `json:"agent_sha256"`
	Modules     []string   `json:"modules"`
	Rescue      RescueInfo `json:"rescue"`
	Size        int64      `json:"initramfs_size"`
	RescueSize  int64      `json:"rescue_initramfs_size"`
	Created     time.Time  `json:"created"`
}

// CacheDir is the root of imgbake's cache: $IMGBAKE_CACHE_DIR or the user
// cache directory.
func CacheDir() (string, error) {
	if d := os.Getenv("IMGBAKE_CACHE_DIR"); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory: %w (set IMGBAKE_CACHE_DIR)", err)
	}
	return filepath.Join(d, "imgbake"), nil
}

// BuildOptions select the kernel and cache.
type BuildOptions struct {
	Kernel   string // explicit vmlinuz path
	CacheDir string
	Force    bool // rebuild even if cached
}

// Build returns the appliance for the current kernel and agent, building the
// initramfs into the cache when its content hash is not there yet.
func Build(opts BuildOptions) (*Appliance, error) {
	k, err := FindKernel(opts.Kernel)
	if err != nil {
		return nil, err
	}
	agent, err := AgentBinary()
	if err != nil {
		return nil, err
	}
	idx, err := kernel.LoadModules(k.ModulesDir)
	if err != nil {
		return nil, fmt.Errorf("reading modules of kernel %s: %w", k.Version, err)
	}
	groups, err := resolveGroups(idx)
	if err != nil {
		return nil, err
	}

	cache := opts.CacheDir
	if cache == "" {
		if cache, err = CacheDir(); err != nil {
			return nil, err
		}
	}
	agentSum := sha256.Sum256(agent)
	// Fast path for every command after the first: when no input file
	// changed (by stat), the key is remembered and nothing is hashed or
	// read again.
	fp := inputFingerprint(k, groups, agentSum[:])
	memo := filepath.Join(cache, "appliance", "inputs", fp)
	if !opts.Force {
		if b, err := os.ReadFile(memo); err == nil {
			if app, ok := cachedAppliance(filepath.Join(cache, "appliance", strings.TrimSpace(string(b))), k); ok {
				return app, nil
			}
		}
	}

	// The key covers every byte that goes into the appliance.
	h := sha256.New()
	fmt.Fprintf(h, "imgbake-appliance v2\nkernel %s\n", k.Image)
	if err := hashFile(h, k.Image); err != nil {
		return nil, fmt.Errorf("%w: reading %s: %v", ErrNoKernel, k.Image, err)
	}
	h.Write(agentSum[:])
	rescue, err := collectRescue()
	if err != nil {
		return nil, fmt.Errorf("collecting the appliance's rescue tools: %w", err)
	}
	fmt.Fprintf(h, "rescue %x\n", rescue.digest)
	var allMods []string
	for _, g := range groups {
		for _, f := range g.files {
			fmt.Fprintf(h, "%s %s\n", g.group, f)
			if slices.Contains(allMods, f) {
				continue // a dependency of two groups is stored once
			}
			if err := hashFile(h, filepath.Join(k.ModulesDir, f)); err != nil {
				return nil, err
			}
			allMods = append(allMods, f)
		}
	}
	key := hex.EncodeToString(h.Sum(nil))[:16]
	defer func() {
		// Remember the key for these inputs once the appliance exists.
		if _, err := os.Stat(filepath.Join(cache, "appliance", key, "manifest.json")); err == nil {
			_ = os.MkdirAll(filepath.Dir(memo), 0o700)
			_ = os.WriteFile(memo, []byte(key+"\n"), 0o600)
		}
	}()
	dir := filepath.Join(cache, "appliance", key)
	app := &Appliance{Kernel: k, Initramfs: filepath.Join(dir, "initramfs.cpio"), Key: key, Dir: dir, Modules: len(allMods),
		RescueInitramfs: filepath.Join(dir, "initramfs-rescue.cpio"), Rescue: rescue.info}
	if cached, ok := cachedAppliance(dir, k); ok && !opts.Force {
		return cached, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	var list bytes.Buffer
	for _, g := range groups {
		for _, f := range g.files {
			list.WriteString(proto.ModuleListLine(g.group, "/lib/modules/"+k.Version+"/"+f))
		}
	}
	if app.Size, err = writeInitramfsFile(dir, app.Initramfs, agent, k, allMods, list.Bytes(), nil); err != nil {
		return nil, err
	}
	if app.RescueSize, err = writeInitramfsFile(dir, app.RescueInitramfs, agent, k, allMods, list.Bytes(), rescue.records); err != nil {
		return nil, err
	}
	app.Built = true
	m := Manifest{Key: key, Kernel: k.Image, KernelVer: k.Version, AgentSHA256: hex.EncodeToString(agentSum[:]),
		Modules: allMods, Rescue: rescue.info, Size: app.Size, RescueSize: app.RescueSize, Created: time.Now().UTC()}
	mb, _ := json.MarshalIndent(m, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), mb, 0o600); err != nil {
		return nil, err
	}
	pruneCache(filepath.Join(cache, "appliance"), key, time.Now())
	return app, nil
}

// Cache pruning: every new agent, kernel or rescue tool set makes a new
// appliance (~45 MB of initramfs plus ~150 MB of saved memory), so when one
// is built, entries unused for cacheKeepFor go, and of the rest only the
// cacheKeep most recently used stay. An entry's directory mtime is its
// last use (cachedAppliance touches it). A process still using a pruned
// entry keeps its open files; the next command simply builds again.
const (
	cacheKeep    = 3
	cacheKeepFor = 7 * 24 * time.Hour
)

func pruneCache(root, current string, now time.Time) {
	ents, err := os.ReadDir(root)
	if err != nil {
		return
	}
	type entry struct {
		name string
		used time.Time
	}
	var old []entry
	for _, e := range ents {
		if !e.IsDir() || e.Name() == current || !isCacheKey(e.Name()) {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		old = append(old, entry{e.Name(), fi.ModTime()})
	}
	sort.Slice(old, func(i, j int) bool { return old[i].used.After(old[j].used) })
	for i, e := range old {
		if i >= cacheKeep || now.Sub(e.used) > cacheKeepFor {
			// Renamed away first, so a concurrent lookup sees all or nothing.
			gone := filepath.Join(root, ".gone-"+e.name)
			if os.Rename(filepath.Join(root, e.name), gone) == nil {
				os.RemoveAll(gone)
			}
		}
	}
}

// isCacheKey reports whether name looks like an appliance key (16 hex).
func isCacheKey(name string) bool {
	if len(name) != 16 {
		return false
	}
	_, err := hex.DecodeString(name)
	return err == nil
}

// ReadManifest loads the manifest of a built appliance.
func (a *Appliance) ReadManifest() (Manifest, error) {
	var m Manifest
	b, err := os.ReadFile(filepath.Join(a.Dir, "manifest.json"))
	if err != nil {
		return m, err
	}
	return m, json.Unmarshal(b, &m)
}

// writeInitramfsFile writes one initramfs into dir under a temporary
// name and renames it to dest, returning its size.
func writeInitramfsFile(dir, dest string, agent []byte, k Kernel, modules []string, list []byte, extra []cpio.Record) (int64, error) {
	tmp, err := os.CreateTemp(dir, ".initramfs-*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp.Name())
	bw := bufio.NewWriterSize(tmp, 1<<20)
	if err := writeInitramfs(cpio.Newc.Writer(bw), agent, k, modules, list, extra); err != nil {
		tmp.Close()
		return 0, fmt.Errorf("writing initramfs: %w", err)
	}
	if err := bw.Flush(); err != nil {
		tmp.Close()
		return 0, fmt.Errorf("writing initramfs: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return 0, fmt.Errorf("writing initramfs: %w", err)
	}
	if err := os.Rename(tmp.Name(), dest); err != nil {
		return 0, err
	}
	fi, err := os.Stat(dest)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// cachedAppliance returns the built appliance in dir, if it is complete.
func cachedAppliance(dir string, k Kernel) (*Appliance, bool) {
	app := &Appliance{Kernel: k, Initramfs: filepath.Join(dir, "initramfs.cpio"), Key: filepath.Base(dir), Dir: dir,
		RescueInitramfs: filepath.Join(dir, "initramfs-rescue.cpio")}
	fi, err := os.Stat(app.Initramfs)
	rfi, rerr := os.Stat(app.RescueInitramfs)
	if err != nil || rerr != nil {
		return nil, false
	}
	m, err := app.ReadManifest()
	if err != nil || m.Key != app.Key {
		return nil, false
	}
	app.Size, app.RescueSize, app.Modules, app.Rescue = fi.Size(), rfi.Size(), len(m.Modules), m.Rescue
	// Mark the entry used (pruneCache keeps recently used ones); at most
	// once an hour, to keep the lookup free of writes.
	if di, err := os.Stat(dir); err == nil && time.Since(di.ModTime()) > time.Hour {
		now := time.Now()
		_ = os.Chtimes(dir, now, now)
	}
	return app, true
}

// inputFingerprint identifies the appliance's inputs by name, size, mtime
// and inode: the kernel, its modules, the agent, the rescue tools and the
// dynamic loader's cache (rewritten by ldconfig whenever a library package
// changes). It decides only whether the content key must be recomputed.
func inputFingerprint(k Kernel, groups []groupFiles, agentSum []byte) string {
	h := sha256.New()
	fmt.Fprintf(h, "inputs v1 %x\n", agentSum)
	stat := func(p string) {
		if fi, err := os.Stat(p); err == nil {
			var ino uint64
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				ino = st.Ino
			}
			fmt.Fprintf(h, "%s %d %d %d\n", p, fi.Size(), fi.ModTime().UnixNano(), ino)
		} else {
			fmt.Fprintf(h, "%s missing\n", p)
		}
	}
	stat(k.Image)
	for _, g := range groups {
		for _, f := range g.files {
			fmt.Fprintf(h, "%s ", g.group)
			stat(filepath.Join(k.ModulesDir, f))
		}
	}
	for _, t := range rescueTools {
		for _, p := range t.paths {
			stat(p)
		}
	}
	for _, p := range busyboxPaths {
		stat(p)
	}
	stat("/etc/ld.so.cache")
	return hex.EncodeToString(h.Sum(nil))[:24]
}

func hashFile(w io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}

func writeInitramfs(w cpio.RecordWriter, agent []byte, k Kernel, modules []string, list []byte, extra []cpio.Record) error {
	recs := []cpio.Record{
		cpio.Directory("dev", 0o755),
		// The kernel opens /dev/console for init before devtmpfs exists, and
		// the Go runtime aborts if fds 0-2 are closed at start.
		cpio.CharDev("dev/console", 0o600, 5, 1),
		cpio.CharDev("dev/null", 0o666, 1, 3),
		cpio.Directory("proc", 0o755),
		cpio.Directory("sys", 0o755),
		cpio.Directory("run", 0o755),
		cpio.Directory("tmp", 0o1777),
		cpio.Directory(strings.TrimPrefix(proto.Sysroot, "/"), 0o755),
		cpio.StaticRecord(agent, cpio.Info{Name: "init", Mode: unixRegular | 0o755}),
		cpio.StaticRecord(list, cpio.Info{Name: strings.TrimPrefix(proto.ModuleList, "/"), Mode: unixRegular | 0o644}),
	}
	for _, m := range modules {
		data, err := os.ReadFile(filepath.Join(k.ModulesDir, m))
		if err != nil {
			return err
		}
		recs = append(recs, cpio.StaticRecord(data, cpio.Info{Name: filepath.Join("lib/modules", k.Version, m), Mode: unixRegular | 0o644}))
	}
	recs = append(recs, extra...)
	// Parents first, each directory once.
	var out []cpio.Record
	seen := map[string]bool{}
	for _, r := range recs {
		name := cpio.Normalize(r.Name)
		for d := path.Dir(name); d != "." && !seen[d]; d = path.Dir(d) {
			var parents []string
			for p := d; p != "." && !seen[p]; p = path.Dir(p) {
				parents = append([]string{p}, parents...)
			}
			for _, p := range parents {
				seen[p] = true
				out = append(out, cpio.Directory(p, 0o755))
			}
		}
		if r.Mode&cpio.S_IFMT == cpio.S_IFDIR {
			if seen[name] {
				continue
			}
			seen[name] = true
		}
		out = append(out, r)
	}
	cpio.MakeAllReproducible(out)
	if err := cpio.WriteRecords(w, out); err != nil {
		return err
	}
	return cpio.WriteTrailer(w)
}

// unixRegular is S_IFREG as cpio records carry it.
const unixRegular = 0o100000
