package session

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgbake/imgbake/bake"
)

// A session's options are stored in its config.json: --key is refused
// before anything is written or started.
func TestStartRefusesKeys(t *testing.T) {
	dir := t.TempDir()
	disk := filepath.Join(dir, "disk.raw")
	if err := os.WriteFile(disk, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	_, err := Start(context.Background(), StartConfig{Disks: []string{disk},
		Options: bake.Options{Format: "raw", Keys: []bake.Key{{Selector: "all", Passphrase: []byte("secret")}}}})
	if err == nil || !errors.Is(err, bake.ErrUsage) || !strings.Contains(err.Error(), "--key is not supported for sessions") {
		t.Fatalf("Start with a key: %v", err)
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("the error shows the passphrase: %v", err)
	}
}
