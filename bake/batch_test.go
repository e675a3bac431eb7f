package bake

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeDisk(t *testing.T, p string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPlanBatch: images are named by their file names unless two share
// one, outputs land in the output directory (with the output format's
// extension), and what would go wrong for the whole batch is refused as
// bad usage before anything starts.
func TestPlanBatch(t *testing.T) {
	dir := t.TempDir()
	a := writeDisk(t, filepath.Join(dir, "x", "web.raw"))
	b := writeDisk(t, filepath.Join(dir, "y", "web.raw"))
	c := writeDisk(t, filepath.Join(dir, "db.qcow2"))
	out := filepath.Join(dir, "out")

	images, err := PlanBatch([]string{a, c}, "", Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []BatchImage{{Path: a, Name: "web.raw"}, {Path: c, Name: "db.qcow2"}}
	if len(images) != 2 || images[0] != want[0] || images[1] != want[1] {
		t.Errorf("PlanBatch = %+v, want %+v", images, want)
	}
	images, err = PlanBatch([]string{a, b}, "", Options{})
	if err != nil || images[0].Name != a || images[1].Name != b {
		t.Errorf("two web.raw: %+v, %v; want them named by their paths", images, err)
	}
	images, err = PlanBatch([]string{a, c}, out, Options{OutputFormat: "vmdk"})
	if err != nil || images[0].Output != filepath.Join(out, "web.vmdk") || images[1].Output != filepath.Join(out, "db.vmdk") {
		t.Errorf("--output-format vmdk: %+v, %v", images, err)
	}

	link := filepath.Join(dir, "link.raw")
	if err := os.Symlink(a, link); err != nil {
		t.Fatal(err)
	}
	writeDisk(t, filepath.Join(out, "db.qcow2"))
	for _, tc := range []struct {
		paths  []string
		outDir string
		o      Options
		want   string
	}{
		{[]string{a, link}, "", Options{}, "are the same image"},
		{[]string{a, b}, out, Options{}, "would both be written to " + filepath.Join(out, "web.raw")},
		{[]string{c}, out, Options{}, filepath.Join(out, "db.qcow2") + " already exists (it is never overwritten)"},
		{[]string{a}, out, Options{InPlace: true}, "--in-place and --output exclude each other"},
	} {
		_, err := PlanBatch(tc.paths, tc.outDir, tc.o)
		if err == nil || !strings.Contains(err.Error(), tc.want) || ExitCode(err) != ExitUsage {
			t.Errorf("PlanBatch(%v, %q) = %v (exit %d), want %q (exit 2)", tc.paths, tc.outDir, err, ExitCode(err), tc.want)
		}
	}
}

// TestWriteBatchJSON: one image_result per image with its status, and a
// bake_end that counts them.
func TestWriteBatchJSON(t *testing.T) {
	images := []BatchImage{{Path: "/d/a.raw", Name: "a.raw", Output: "/o/a.raw"}, {Path: "/d/b.raw", Name: "b.raw", Output: "/o/b.raw"},
		{Path: "/d/c.raw", Name: "c.raw"}, {Path: "/d/d.raw", Name: "d.raw"}}
	results := []JobResult{
		{Name: "a.raw", Started: true, Ran: true, Took: 1500 * time.Millisecond, Summary: Summary{OK: 2, Changed: 1}},
		{Name: "b.raw", Started: true, Err: errors.New("step 1 failed"), Code: ExitStepFailed, Ran: true, Summary: Summary{Failed: 1}},
		{Name: "c.raw", Started: true, AlreadyApplied: true},
		{Name: "d.raw", Code: ExitInterrupted, Err: errors.New("interrupted")},
	}
	var buf bytes.Buffer
	WriteBatchJSON(&buf, images, results, ExitInterrupted, 2)
	var got []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var e map[string]any
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		got = append(got, e)
	}
	if len(got) != 5 {
		t.Fatalf("%d lines, want 5:\n%s", len(got), buf.String())
	}
	for i, want := range []string{"ok", "failed", "already_applied", "not_started"} {
		if got[i]["event"] != "image_result" || got[i]["status"] != want || got[i]["disk"] != images[i].Path {
			t.Errorf("line %d: %v, want status %s", i+1, got[i], want)
		}
	}
	if got[0]["output"] != "/o/a.raw" || got[0]["duration_ms"] != 1500.0 || got[0]["summary"].(map[string]any)["changed"] != 1.0 {
		t.Errorf("the ok image: %v", got[0])
	}
	if _, ok := got[1]["output"]; ok || got[1]["error"] != "step 1 failed" || got[1]["exit_code"] != 1.0 {
		t.Errorf("the failed image: %v (no output, its error)", got[1])
	}
	if end := got[4]; end["event"] != "bake_end" || end["images"] != 4.0 || end["failed"] != 2.0 || end["exit_code"] != 130.0 {
		t.Errorf("bake_end: %v", end)
	}
}

func TestWriteBatchSummary(t *testing.T) {
	images := []BatchImage{{Name: "a.raw", Output: "/o/a.raw"}, {Name: "b.raw", Output: "/o/b.raw"}}
	results := []JobResult{{Name: "a.raw", Started: true, Took: time.Second}, {Name: "b.raw", Started: true, AlreadyApplied: true, Took: time.Second}}
	var buf bytes.Buffer
	WriteBatchSummary(&buf, images, results)
	want := "a.raw: ok in 1s — " + Summary{}.String() + " → /o/a.raw\n" +
		"b.raw: ok in 1s — already applied, nothing changed\n"
	if buf.String() != want {
		t.Errorf("got %q, want %q", buf.String(), want)
	}
}
