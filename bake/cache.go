package bake

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/imgbake/imgbake/appliance"
	"github.com/imgbake/imgbake/bake/layercache"
	"github.com/imgbake/imgbake/image"
	"github.com/imgbake/imgbake/recipes"
	"github.com/imgbake/imgbake/steps"
)

// The step-layer cache (`run --cache`): after every step that changed the
// image, its filesystems are frozen and the disk gets a new overlay
// through QMP, so the old one holds exactly the image after that step. It
// is stored under the step's key: the hash of the input's content, the
// facts inspected on it and every step so far as it ran (after templating,
// with the contents of the host files it read). A re-run starts the
// appliance on the layer of the longest cached prefix and runs the rest.

// DefaultLayerCache is the cache directory `--cache` uses without
// --cache-dir.
func DefaultLayerCache() (string, error) {
	d, err := appliance.CacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "layers"), nil
}

// OpenLayerCache opens the layer cache at dir ("" for the default).
func OpenLayerCache(dir string) (*layercache.Store, error) {
	if dir == "" {
		var err error
		if dir, err = DefaultLayerCache(); err != nil {
			return nil, Classify(ErrImage, err)
		}
	}
	s, err := layercache.Open(dir)
	if err != nil {
		return nil, Classify(ErrImage, err)
	}
	return s, nil
}

// cachePlan is one run's use of the cache.
type cachePlan struct {
	store    *layercache.Store
	base     string // content identity of the input
	basePath string
	format   string

	facts    *recipes.Facts    // as recorded for base, nil when unknown
	keys     []string          // key of each step; "" from the first step that cannot be cached
	hit      int               // steps 1..hit come from the cache
	chain    []string          // the layer files the run's disk stands on, bottom first (none: the input itself)
	hitEntry *layercache.Entry // the entry of the last cached step
	active   bool              // layers are still being taken
	vsize    int64
	pending  []pendingLayer
	entries  []*layercache.Entry
}

// top is the layer file the chain ends at; "" is the input itself.
func (p *cachePlan) top() string {
	if len(p.chain) == 0 {
		return ""
	}
	return p.chain[len(p.chain)-1]
}

type pendingLayer struct {
	key, file string
}

// planCache finds the longest cached prefix of rec on the input disk
// (locked, any interrupted commit into it completed), of format.
func planCache(ctx context.Context, store *layercache.Store, disk, format string, refresh bool, rec *recipes.Recipe) (*cachePlan, error) {
	abs, err := filepath.Abs(disk)
	if err != nil {
		return nil, err
	}
	id, err := store.Identity(abs, format)
	if err != nil {
		return nil, Classify(ErrImage, fmt.Errorf("layer cache: %w", err))
	}
	p := &cachePlan{store: store, base: id, basePath: abs, format: format, active: true}
	var f recipes.Facts
	if store.Facts(id, &f) {
		p.facts = &f
		p.keys = stepKeys(rec, id, f)
	}
	if refresh || p.keys == nil {
		return p, nil
	}
	for i, k := range p.keys {
		if k == "" {
			break
		}
		e, ok := store.Get(k)
		if !ok {
			break
		}
		p.hit, p.chain, p.hitEntry = i+1, e.Chain, e
	}
	if p.hitEntry != nil && len(p.chain) > 0 && p.hitEntry.BasePath != abs {
		// The same content at another path: point the chain's bottom at
		// this input (a header change only; the data is the same).
		bottom := store.LayerFile(p.chain[0])
		if err := os.Chmod(bottom, 0o600); err == nil {
			err = image.Rebase(ctx, bottom, abs, format)
			os.Chmod(bottom, 0o400)
			if err != nil {
				return nil, Classify(ErrImage, fmt.Errorf("layer cache: %w", err))
			}
		}
		p.hitEntry.BasePath = abs
	}
	return p, nil
}

// stepKeys computes every step's key; a step that cannot be cached (cache:
// false, a kind that writes to the host, a template that does not render)
// and all after it get "".
func stepKeys(rec *recipes.Recipe, base string, f recipes.Facts) []string {
	keys := make([]string, len(rec.Steps))
	fb, _ := json.Marshal(f)
	parent := hashOf("imgbake layer cache v1", base, string(fb))
	for i, st := range rec.Steps {
		k, ok := stepKey(rec, parent, st, f)
		if !ok {
			break
		}
		keys[i], parent = k, k
	}
	return keys
}

func stepKey(rec *recipes.Recipe, parent string, st recipes.Step, f recipes.Facts) (string, bool) {
	if st.NoCache {
		return "", false
	}
	if k, ok := steps.Lookup(st.Op.Kind()); !ok || k.HostEffect {
		return "", false
	}
	rs, err := rec.ResolveStep(st, f)
	if err != nil {
		return "", false
	}
	op, err := json.Marshal(rs.Op)
	if err != nil {
		return "", false
	}
	parts := []string{parent, rs.Op.Kind(), string(op), st.Creates, strconv.FormatBool(st.IgnoreErrors), st.Timeout.String()}
	if st.When != nil {
		parts = append(parts, "when "+st.When.String())
	}
	if st.ChangedWhen != nil {
		parts = append(parts, "changed_when "+st.ChangedWhen.String())
	}
	for _, p := range rs.HostPaths {
		d, err := hostDigest(p)
		if err != nil {
			return "", false
		}
		parts = append(parts, p, d)
	}
	return hashOf(parts...), true
}

func hashOf(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s;", len(p), p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// hostDigest hashes a host file or tree as a step reads it: names, modes,
// symlink targets and contents; a missing path hashes as missing.
func hostDigest(root string) (string, error) {
	h := sha256.New()
	fi, err := os.Lstat(root)
	if errors.Is(err, fs.ErrNotExist) {
		return "missing", nil
	}
	if err != nil {
		return "", err
	}
	if !fi.IsDir() {
		if err := digestEntry(h, root, ".", fi); err != nil {
			return "", err
		}
		return hex.EncodeToString(h.Sum(nil)), nil
	}
	var paths []string
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		paths = append(paths, p)
		return nil
	})
	if err != nil {
		return "", err
	}
	sort.Strings(paths)
	for _, p := range paths {
		fi, err := os.Lstat(p)
		if err != nil {
			return "", err
		}
		rel, _ := filepath.Rel(root, p)
		if err := digestEntry(h, p, rel, fi); err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func digestEntry(h io.Writer, p, rel string, fi fs.FileInfo) error {
	fmt.Fprintf(h, "%q %o %d\n", rel, fi.Mode(), fi.ModTime().Unix())
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		t, err := os.Readlink(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "-> %q\n", t)
	case fi.Mode().IsRegular():
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := io.Copy(h, f); err != nil {
			return err
		}
	}
	return nil
}

// begin records the facts inspected on the input and computes the keys
// with them when the input was not known yet (or its facts changed: a
// new imgbake inspects differently). A run on cached layers uses the
// recorded facts instead.
func (p *cachePlan) begin(f recipes.Facts, rec *recipes.Recipe) error {
	if p.facts == nil || *p.facts != f {
		if err := p.store.PutFacts(p.base, f); err != nil {
			return Classify(ErrImage, fmt.Errorf("layer cache: %w", err))
		}
		p.facts = &f
		p.keys = stepKeys(rec, p.base, f)
	}
	return nil
}

// cacheStep records step st (1-based index i) as it ended: a new layer when it
// changed the image, the previous layer when it did not. Caching stops at
// the first step without a key, or a failure.
func (img *Image) cacheStep(ctx context.Context, st recipes.Step, o Outcome) error {
	p := img.cache
	if p == nil || !p.active {
		return nil
	}
	key := p.keys[st.Index-1]
	if key == "" || o.Status == StatusFailed || o.Status == StatusInterrupted {
		p.active = false
		return nil
	}
	if o.Status == StatusChanged || o.Status == StatusIgnored {
		if err := img.snapshotLayer(ctx, key); err != nil {
			p.active = false
			fmt.Fprintf(img.notices, "imgbake: warning: layer cache: not caching from step %d on: %v\n", st.Index, err)
			return nil
		}
		p.chain = append(append([]string(nil), p.chain...), key+".qcow2")
	}
	now := time.Now().UTC()
	parent := ""
	if st.Index > 1 {
		parent = p.keys[st.Index-2]
	}
	p.entries = append(p.entries, &layercache.Entry{Key: key, Parent: parent, Base: p.base, BasePath: p.basePath, Format: p.format,
		Step: st.Index, Title: st.Title(), Layer: p.top(), Chain: p.chain, Created: now, LastUsed: now})
	return nil
}

// snapshotLayer freezes the image, makes a new overlay the disk's active
// layer and thaws: the old overlay is the layer of key from now on.
func (img *Image) snapshotLayer(ctx context.Context, key string) error {
	p, d := img.cache, &img.disks[0]
	if p.vsize == 0 {
		n, err := image.VirtualSize(ctx, d.path, d.format)
		if err != nil {
			return err
		}
		p.vsize = n
	}
	next := filepath.Join(img.runDir, fmt.Sprintf("top-%d.qcow2", len(p.pending)+1))
	if err := image.CreateOverlayUnchecked(ctx, next, p.store.LayerPath(key), "qcow2", p.vsize); err != nil {
		return err
	}
	if _, err := img.sess.Freeze(ctx); err != nil {
		os.Remove(next)
		return err
	}
	err := img.sess.SnapshotDisk(ctx, 0, next)
	if terr := img.sess.Thaw(context.WithoutCancel(ctx)); err == nil {
		err = terr
	}
	if err != nil {
		return err
	}
	p.pending = append(p.pending, pendingLayer{key: key, file: d.overlay.Path})
	d.overlay.Path = next
	return nil
}

// finishCache stores the layers taken and their entries; the appliance
// has stopped, so every layer file is complete.
func (img *Image) finishCache() {
	p := img.cache
	if p == nil {
		return
	}
	sizes := map[string]int64{}
	for _, l := range p.pending {
		name, size, err := p.store.AddLayer(l.key, l.file)
		if err != nil {
			fmt.Fprintf(img.notices, "imgbake: warning: layer cache: %v\n", err)
			return // later entries would name a missing layer
		}
		sizes[name] = size
	}
	p.pending = nil
	for _, e := range p.entries {
		e.LayerSize = sizes[e.Layer]
		if err := p.store.Put(e); err != nil {
			fmt.Fprintf(img.notices, "imgbake: warning: layer cache: %v\n", err)
			return
		}
	}
	if p.hitEntry != nil {
		_ = p.store.Touch(p.hitEntry)
	}
	img.logf("layer cache: %d step(s) from the cache, %d entr%s stored in %s", p.hit, len(p.entries), map[bool]string{true: "y", false: "ies"}[len(p.entries) == 1], p.store.Dir)
}
