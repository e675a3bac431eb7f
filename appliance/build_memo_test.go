package appliance

import (
	"os"
	"path/filepath"
	"testing"
)

// TestBuildRemembersKey: the second Build finds the appliance through the
// stat fingerprint of its inputs, and a lost memo falls back to hashing.
func TestBuildRemembersKey(t *testing.T) {
	if _, err := FindKernel(""); err != nil {
		t.Skipf("no kernel: %v", err)
	}
	if _, err := AgentBinary(); err != nil {
		t.Skipf("no agent: %v", err)
	}
	cache := t.TempDir()
	first, err := Build(BuildOptions{CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	if !first.Built {
		t.Fatal("the first Build in an empty cache did not build")
	}
	memos, _ := filepath.Glob(filepath.Join(cache, "appliance", "inputs", "*"))
	if len(memos) != 1 {
		t.Fatalf("want one input memo, found %v", memos)
	}
	second, err := Build(BuildOptions{CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	if second.Built || second.Key != first.Key || second.Size != first.Size || second.Modules != first.Modules ||
		len(second.Rescue.Tools) != len(first.Rescue.Tools) {
		t.Errorf("second Build = %+v, want the cached %+v", second, first)
	}
	// Without the memo the content key is computed again and still hits.
	if err := os.Remove(memos[0]); err != nil {
		t.Fatal(err)
	}
	third, err := Build(BuildOptions{CacheDir: cache})
	if err != nil || third.Built || third.Key != first.Key {
		t.Errorf("third Build = %+v, %v", third, err)
	}
	if _, err := os.Stat(memos[0]); err != nil {
		t.Error("the memo was not written again")
	}
}
