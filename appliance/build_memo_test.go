package appliance

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/imgbake/imgbake/internal/vmtest"
)

// requireAppliance ends the test (a failure under IMGBAKE_VM_TESTS=1, a
// skip otherwise) when the appliance cannot be built here: no kernel, or a
// test binary built without the agent.
func requireAppliance(t *testing.T) {
	t.Helper()
	if _, err := FindKernel(""); err != nil {
		vmtest.Missing(t, "no appliance kernel: %v (scripts/install-deps.sh installs linux-image-cloud-amd64)", err)
	}
	if _, err := AgentBinary(); err != nil {
		vmtest.Missing(t, "no appliance agent: %v (run `make agent`, which builds %s)", err, "appliance/agentbin/imgbake-agent")
	}
}

// TestBuildRemembersKey: the second Build finds the appliance through the
// stat fingerprint of its inputs, and a lost memo falls back to hashing.
func TestBuildRemembersKey(t *testing.T) {
	requireAppliance(t)
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
