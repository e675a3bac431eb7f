package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imgbake/imgbake/appliance"
	"github.com/imgbake/imgbake/internal/vmtest"
)

// cliResult is what one in-process run of the CLI produced.
type cliResult struct {
	code           int
	stdout, stderr string
}

func (r cliResult) String() string {
	return "exit " + strconv.Itoa(r.code) + "\n--- stdout\n" + r.stdout + "--- stderr\n" + r.stderr
}

// imgbake runs the CLI in-process, like a user would from a shell.
func imgbake(t *testing.T, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	code := Execute(ctx, Stdio{In: strings.NewReader(""), Out: &out, Err: &errb}, append([]string{"imgbake"}, args...))
	return cliResult{code: code, stdout: out.String(), stderr: errb.String()}
}

// writeRecipe writes a recipe (and optional extra files) into a fresh
// directory and returns the recipe's path.
func writeRecipe(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "recipe.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// sha256File hashes a (possibly sparse) disk image.
func sha256File(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// noLeftovers checks that no qemu started by this test process is still
// running and no private run directory is left in TMPDIR.
func noLeftovers(t *testing.T, tmp string) {
	t.Helper()
	if pids := childQEMUs(t); len(pids) > 0 {
		t.Errorf("qemu processes left running: %v", pids)
	}
	entries, _ := os.ReadDir(tmp)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "imgbake-") {
			t.Errorf("temp files left behind: %s", filepath.Join(tmp, e.Name()))
		}
	}
}

// childQEMUs lists qemu processes whose parent is this test process.
func childQEMUs(t *testing.T) []string {
	t.Helper()
	me := strconv.Itoa(os.Getpid())
	var pids []string
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		stat, err := os.ReadFile(filepath.Join("/proc", d.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		if i < 0 || !strings.Contains(s[:i], "(qemu-system") {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 1 && f[1] == me && f[0] != "Z" {
			pids = append(pids, d.Name())
		}
	}
	return pids
}

// privateTmp points TMPDIR at a fresh directory so leftovers can be counted.
func privateTmp(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("TMPDIR", dir)
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir()) // the lock directory lives elsewhere
	return dir
}

// vmTests gates a test that boots the appliance (see internal/vmtest): it
// skips without IMGBAKE_VM_TESTS=1; with it, a missing qemu, kernel or
// agent fails the test.
func vmTests(t *testing.T) {
	t.Helper()
	vmtest.Gate(t)
	vmtest.LookPath(t, "qemu-system-x86_64", "qemu-system-x86")
	if _, err := appliance.FindKernel(""); err != nil {
		vmtest.Missing(t, "no appliance kernel: %v (scripts/install-deps.sh installs linux-image-cloud-amd64)", err)
	}
	if _, err := appliance.AgentBinary(); err != nil {
		vmtest.Missing(t, "no appliance agent in this test binary: %v (run `make agent` first; make test does)", err)
	}
}
