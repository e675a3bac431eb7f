package appliance

import (
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"
)

// TestPruneCache: a new appliance keeps the three most recently used
// others, drops older ones and any unused for a week, and leaves what is
// not an appliance entry alone.
func TestPruneCache(t *testing.T) {
	root := t.TempDir()
	now := time.Now()
	ages := map[string]time.Duration{
		"00000000000000a1": time.Minute, // the new one
		"00000000000000b1": time.Hour,
		"00000000000000b2": 2 * time.Hour,
		"00000000000000b3": 3 * time.Hour,
		"00000000000000b4": 4 * time.Hour,      // fourth most recent: goes
		"00000000000000c1": 8 * 24 * time.Hour, // unused for over a week
		"inputs":           30 * 24 * time.Hour,
		"not-a-key-000000": 30 * 24 * time.Hour,
	}
	for name, age := range ages {
		d := filepath.Join(root, name)
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "manifest.json"), []byte("{}"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(d, now.Add(-age), now.Add(-age)); err != nil {
			t.Fatal(err)
		}
	}
	pruneCache(root, "00000000000000a1", now)
	ents, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	sort.Strings(got)
	want := []string{"00000000000000a1", "00000000000000b1", "00000000000000b2", "00000000000000b3", "inputs", "not-a-key-000000"}
	if len(got) != len(want) {
		t.Fatalf("after pruning: %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("after pruning: %v, want %v", got, want)
		}
	}
}
