// Package layercache stores the step layers of `imgbake run --cache`: each
// entry maps a step key (the hash of the input image's content and every
// step up to this one) to the qcow2 layer file holding the image's state
// after that step, and the chain of layer files below it. Layers are
// immutable once stored; an entry is written only after its layer is
// complete, so a killed run leaves nothing half-written behind.
package layercache

import (
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
	"strings"
	"syscall"
	"time"
)

// Store is a cache directory:
//
//	DIR/entries/KEY.json   one entry per step key
//	DIR/layers/KEY.qcow2   layer files (an entry may share its parent's)
//	DIR/facts/ID.json      the facts inspected on an input image, by identity
//	DIR/ids/DEV-INO.json   the content identity of an input file, memoized by stat
//	DIR/runs/run-*/        private directories of running runs (overlays)
type Store struct {
	Dir string
}

// Entry is one cached step.
type Entry struct {
	Key       string    `json:"key"`
	Parent    string    `json:"parent,omitempty"` // the previous step's key; "" for the first step
	Base      string    `json:"base"`             // content identity of the input image
	BasePath  string    `json:"base_path"`        // where that input was when the chain was made
	Format    string    `json:"base_format"`
	Step      int       `json:"step"`
	Title     string    `json:"title"`
	Layer     string    `json:"layer,omitempty"` // file name in layers/ of the top of the chain; "" = the input itself
	Chain     []string  `json:"chain,omitempty"` // every layer file of the chain, bottom first
	Created   time.Time `json:"created"`
	LastUsed  time.Time `json:"last_used"`
	LayerSize int64     `json:"layer_size"` // bytes of Layer on disk when stored
	Dir       string    `json:"dir"`        // the store's directory: layers name each other by absolute path in it
}

// Open makes the directories of a store at dir (0700: layers hold whole
// filesystems) and removes what runs that died left in runs/.
func Open(dir string) (*Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	for _, d := range []string{"", "entries", "layers", "facts", "ids", "runs"} {
		if err := os.MkdirAll(filepath.Join(abs, d), 0o700); err != nil {
			return nil, fmt.Errorf("layer cache: %w", err)
		}
	}
	s := &Store{Dir: abs}
	s.cleanRuns()
	return s, nil
}

// RunDir makes a private directory for one run's overlays, on the same
// filesystem as the layers so that finished layers move in by rename.
func (s *Store) RunDir() (string, error) {
	d, err := os.MkdirTemp(filepath.Join(s.Dir, "runs"), "run-")
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(d, "pid"), []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
		os.RemoveAll(d)
		return "", err
	}
	return d, nil
}

func (s *Store) cleanRuns() {
	ents, _ := os.ReadDir(filepath.Join(s.Dir, "runs"))
	for _, e := range ents {
		d := filepath.Join(s.Dir, "runs", e.Name())
		if _, err := os.Stat(filepath.Join(d, ".keep")); err == nil {
			continue // a commit from it was interrupted: the next open of its image completes it
		}
		b, err := os.ReadFile(filepath.Join(d, "pid"))
		pid, perr := strconv.Atoi(strings.TrimSpace(string(b)))
		if err == nil && perr == nil && pid > 0 && syscall.Kill(pid, 0) == nil {
			continue // still running (or the pid was reused: left for later)
		}
		if err != nil {
			if fi, serr := os.Stat(d); serr == nil && time.Since(fi.ModTime()) < time.Minute {
				continue // being created right now
			}
		}
		os.RemoveAll(d)
	}
}

// LayerPath is where the layer file of key lives.
func (s *Store) LayerPath(key string) string { return s.LayerFile(key + ".qcow2") }

// LayerFile is the path of a layer file named in an entry's Chain.
func (s *Store) LayerFile(name string) string { return filepath.Join(s.Dir, "layers", name) }

func (s *Store) entryPath(key string) string { return filepath.Join(s.Dir, "entries", key+".json") }

// Get returns the entry for key if it and every layer file of its chain
// are present.
func (s *Store) Get(key string) (*Entry, bool) {
	b, err := os.ReadFile(s.entryPath(key))
	if err != nil {
		return nil, false
	}
	var e Entry
	if json.Unmarshal(b, &e) != nil || e.Key != key || e.Dir != s.Dir {
		return nil, false // a moved cache directory: its chains name the old paths
	}
	for _, l := range e.Chain {
		if _, err := os.Stat(s.LayerFile(l)); err != nil {
			return nil, false
		}
	}
	return &e, true
}

// Touch records that e was used now (LRU order for Prune).
func (s *Store) Touch(e *Entry) error {
	e.LastUsed = time.Now().UTC()
	return s.Put(e)
}

// Put writes e (atomically: the entry appears whole or not at all).
func (s *Store) Put(e *Entry) error {
	e.Dir = s.Dir
	b, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(s.entryPath(e.Key), b)
}

// AddLayer moves a finished layer file into the store under key's name,
// read-only from now on, and returns its file name.
func (s *Store) AddLayer(key, file string) (string, int64, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", 0, err
	}
	err = f.Sync()
	fi, serr := f.Stat()
	f.Close()
	if err != nil {
		return "", 0, err
	}
	if serr != nil {
		return "", 0, serr
	}
	if err := os.Chmod(file, 0o400); err != nil {
		return "", 0, err
	}
	if err := os.Rename(file, s.LayerPath(key)); err != nil {
		return "", 0, err
	}
	return key + ".qcow2", fi.Size(), nil
}

// List returns every entry, most recently used first.
func (s *Store) List() ([]*Entry, error) {
	ents, err := os.ReadDir(filepath.Join(s.Dir, "entries"))
	if err != nil {
		return nil, err
	}
	var out []*Entry
	for _, de := range ents {
		key, ok := strings.CutSuffix(de.Name(), ".json")
		if !ok {
			continue
		}
		if e, ok := s.Get(key); ok {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].LastUsed.After(out[j].LastUsed) })
	return out, nil
}

// Size is the bytes the layer files take on disk.
func (s *Store) Size() (int64, error) {
	var n int64
	ents, err := os.ReadDir(filepath.Join(s.Dir, "layers"))
	if err != nil {
		return 0, err
	}
	for _, e := range ents {
		if fi, err := e.Info(); err == nil {
			n += allocated(fi)
		}
	}
	return n, nil
}

func allocated(fi fs.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Blocks * 512
	}
	return fi.Size()
}

// PruneResult is what Prune removed.
type PruneResult struct {
	Entries, Layers int
	Freed, Left     int64
}

// Prune removes the least recently used entries until the layers their
// chains use take at most maxBytes; a layer goes when no entry uses it any
// more. Orphan layers (of runs that were
// killed before writing their entries) are removed too.
func (s *Store) Prune(maxBytes int64) (PruneResult, error) {
	var res PruneResult
	entries, err := s.List()
	if err != nil {
		return res, err
	}
	sizes := map[string]int64{}
	ents, err := os.ReadDir(filepath.Join(s.Dir, "layers"))
	if err != nil {
		return res, err
	}
	var total int64
	for _, e := range ents {
		if fi, err := e.Info(); err == nil {
			sizes[e.Name()] = allocated(fi)
			total += allocated(fi)
		}
	}
	used := func(live []*Entry) map[string]bool {
		u := map[string]bool{}
		for _, e := range live {
			for _, l := range e.Chain {
				u[l] = true
			}
		}
		return u
	}
	live := entries
	for {
		u := used(live)
		var kept int64
		for l, n := range sizes {
			if u[l] {
				kept += n
			}
		}
		if kept <= maxBytes || len(live) == 0 {
			break
		}
		// Drop the least recently used entry. A layer stays while any
		// live entry's chain uses it, so a kept chain is always whole.
		live = live[:len(live)-1]
	}
	keep := map[string]bool{}
	for _, e := range live {
		keep[e.Key] = true
	}
	for _, e := range entries {
		if !keep[e.Key] {
			if err := os.Remove(s.entryPath(e.Key)); err == nil {
				res.Entries++
			}
		}
	}
	u := used(live)
	for l, n := range sizes {
		if !u[l] {
			if err := os.Remove(s.LayerFile(l)); err == nil {
				res.Layers++
				res.Freed += n
				total -= n
			}
		}
	}
	res.Left = total
	return res, nil
}

// Identity is the content identity of an input image: the SHA-256 of its
// bytes and its format. Hashing a large image takes seconds, so the result
// is kept per (device, inode, size, mtime, ctime): any write changes ctime.
func (s *Store) Identity(path, format string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "", errors.New("layer cache: no stat data")
	}
	stamp := fmt.Sprintf("%d %d %d %d.%d %d.%d %s", st.Dev, st.Ino, st.Size, st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec, format)
	memo := filepath.Join(s.Dir, "ids", fmt.Sprintf("%d-%d.json", st.Dev, st.Ino))
	var m struct{ Stamp, ID string }
	if b, err := os.ReadFile(memo); err == nil && json.Unmarshal(b, &m) == nil && m.Stamp == stamp {
		return m.ID, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	io.WriteString(h, format+"\x00")
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hashing %s: %w", path, err)
	}
	m.Stamp, m.ID = stamp, hex.EncodeToString(h.Sum(nil))
	b, _ := json.Marshal(m)
	_ = writeAtomic(memo, b)
	return m.ID, nil
}

// Facts returns the facts recorded for an input identity into v.
func (s *Store) Facts(id string, v any) bool {
	b, err := os.ReadFile(filepath.Join(s.Dir, "facts", id+".json"))
	return err == nil && json.Unmarshal(b, v) == nil
}

// PutFacts records the facts inspected on an input identity.
func (s *Store) PutFacts(id string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return writeAtomic(filepath.Join(s.Dir, "facts", id+".json"), b)
}

func writeAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}
