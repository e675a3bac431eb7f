package layercache

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func layer(t *testing.T, s *Store, key string, size int) string {
	t.Helper()
	f := filepath.Join(s.Dir, "runs", key+".tmp")
	if err := os.WriteFile(f, make([]byte, size), 0o600); err != nil {
		t.Fatal(err)
	}
	name, _, err := s.AddLayer(key, f)
	if err != nil {
		t.Fatal(err)
	}
	return name
}

func TestPruneKeepsWholeChains(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	l1, l2, l3 := layer(t, s, "k1", 64<<10), layer(t, s, "k2", 64<<10), layer(t, s, "k3", 64<<10)
	t0 := time.Now().Add(-time.Hour)
	put := func(key string, used time.Time, chain ...string) {
		t.Helper()
		if err := s.Put(&Entry{Key: key, Layer: chain[len(chain)-1], Chain: chain, LastUsed: used}); err != nil {
			t.Fatal(err)
		}
	}
	put("k1", t0, l1)
	put("k2", t0.Add(time.Minute), l1, l2) // built on k1's layer
	put("k3", t0.Add(2*time.Minute), l3)
	if e, ok := s.Get("k2"); !ok || len(e.Chain) != 2 {
		t.Fatalf("Get(k2) = %+v, %v", e, ok)
	}
	total, _ := s.Size()
	// Everything fits: nothing goes.
	res, err := s.Prune(total)
	if err != nil || res.Entries != 0 || res.Layers != 0 {
		t.Fatalf("prune within the limit: %+v, %v", res, err)
	}
	// Room for two of the three layers: dropping the least recently used
	// entry (k1) frees nothing while k2 is built on its layer, so k2 goes
	// too, with both layers; k3 stays.
	if res, err = s.Prune(total * 2 / 3); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"k1", "k2"} {
		if _, ok := s.Get(k); ok {
			t.Errorf("%s kept over the limit", k)
		}
	}
	if _, ok := s.Get("k3"); !ok || res.Entries != 2 || res.Layers != 2 || res.Left > total*2/3 {
		t.Errorf("after the prune: %+v", res)
	}
	// A missing layer makes its entries misses, never a broken chain.
	os.Remove(s.LayerPath("k3"))
	if _, ok := s.Get("k3"); ok {
		t.Error("an entry whose layer is gone was returned")
	}
}

func TestIdentityMemo(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), "disk.raw")
	os.WriteFile(img, []byte("one"), 0o600)
	a, err := s.Identity(img, "raw")
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := s.Identity(img, "raw"); b != a {
		t.Errorf("identity changed without a write: %s %s", a, b)
	}
	if b, _ := s.Identity(img, "qcow2"); b == a {
		t.Error("the format is not part of the identity")
	}
	time.Sleep(10 * time.Millisecond)
	os.WriteFile(img, []byte("two"), 0o600)
	if b, _ := s.Identity(img, "raw"); b == a {
		t.Error("a write did not change the identity")
	}
}

func TestStaleRunsRemoved(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	live, err := s.RunDir()
	if err != nil {
		t.Fatal(err)
	}
	dead := filepath.Join(dir, "runs", "run-dead")
	os.MkdirAll(dead, 0o700)
	os.WriteFile(filepath.Join(dead, "pid"), []byte("999999999"), 0o600)
	committing := filepath.Join(dir, "runs", "run-committing")
	os.MkdirAll(committing, 0o700)
	os.WriteFile(filepath.Join(committing, "pid"), []byte("999999999"), 0o600)
	os.WriteFile(filepath.Join(committing, ".keep"), nil, 0o600)
	if _, err := Open(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Error("a dead run's directory was kept")
	}
	if _, err := os.Stat(committing); err != nil {
		t.Error("the overlay of an interrupted commit was removed: the commit could not be completed")
	}
	if _, err := os.Stat(live); err != nil {
		t.Error("a live run's directory was removed")
	}
}

func TestMovedStoreMisses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a")
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	l := layer(t, s, "k", 4096)
	if err := s.Put(&Entry{Key: "k", Layer: l, Chain: []string{l}}); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Get("k"); !ok {
		t.Fatal("entry not found")
	}
	moved := filepath.Join(filepath.Dir(dir), "b")
	if err := os.Rename(dir, moved); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(moved)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s2.Get("k"); ok {
		t.Error("an entry of a moved cache directory (its layers name the old paths) was returned")
	}
}
