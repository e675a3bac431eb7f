package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imgbake/imgbake/testimages"
)

// bakeRecipe changes the image, and fails on an image whose fstab mounts an
// EFI system partition (the GPT test image; the bare-filesystem one has none).
const bakeRecipe = `name: many
steps:
  - write: {path: /root/baked, content: "baked by imgbake bake\n"}
  - run: "! grep -q /boot/efi /etc/fstab"
  - run: echo done > /root/done
`

// copyImage makes a sparse copy of the cached test image name at dst.
func copyImage(t *testing.T, name, dst string) string {
	t.Helper()
	if out, err := exec.Command("cp", "--sparse=always", testimages.Path(t, name), dst).CombinedOutput(); err != nil {
		t.Fatalf("copying %s: %v: %s", name, err, out)
	}
	return dst
}

// maxQEMUs polls the qemu children of this process until stop is closed and
// returns the most that ran at once.
func maxQEMUs(t *testing.T, stop <-chan struct{}) func() int {
	var mu sync.Mutex
	peak := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			n := len(childQEMUs(t))
			mu.Lock()
			peak = max(peak, n)
			mu.Unlock()
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return func() int { <-done; mu.Lock(); defer mu.Unlock(); return peak }
}

// TestBakeMany bakes four images, two at a time: one that is not a disk
// image at all (exit 3), one on which a step fails (exit 1), and two that
// succeed although the failures came first. Each result is read back with
// debugfs; the failed ones are byte-identical.
func TestBakeMany(t *testing.T) {
	vmTests(t)
	tmp := privateTmp(t)
	info := testimages.InfoOf(t, testimages.NoPart)
	dir := t.TempDir()
	broken := filepath.Join(dir, "broken.raw")
	must(t, os.WriteFile(broken, make([]byte, 4<<20), 0o644))
	gpt := copyImage(t, testimages.GPT, filepath.Join(dir, "gpt.qcow2"))
	good := []string{copyImage(t, testimages.NoPart, filepath.Join(dir, "good1.raw")), copyImage(t, testimages.NoPart, filepath.Join(dir, "good2.raw"))}
	before := map[string]string{broken: sha256File(t, broken), gpt: sha256File(t, gpt)}
	recipe := writeRecipe(t, bakeRecipe)

	stop := make(chan struct{})
	peak := maxQEMUs(t, stop)
	start := time.Now()
	r := imgbake(t, "bake", "--jobs", "2", recipe, broken, gpt, good[0], good[1])
	close(stop)
	t.Logf("4 images, 2 at a time: %s\n%s", time.Since(start).Round(time.Millisecond), r)
	if r.code != ExitImage {
		t.Errorf("exit %d, want %d (an image error outranks a failed step)", r.code, ExitImage)
	}
	if p := peak(); p != 2 {
		t.Errorf("%d appliances ran at once with --jobs 2", p)
	}

	names := []string{"broken.raw", "gpt.qcow2", "good1.raw", "good2.raw"}
	summary := map[string]*regexp.Regexp{
		"broken.raw": regexp.MustCompile(`(?m)^broken\.raw: failed \(exit 3\) in [0-9.]+m?s — .*no operating system found`),
		"gpt.qcow2":  regexp.MustCompile(`(?m)^gpt\.qcow2: failed \(exit 1\) in [0-9.]+m?s — 0 ok, 1 changed, 0 skipped, 1 failed, 0 ignored: step 2 `),
		"good1.raw":  regexp.MustCompile(`(?m)^good1\.raw: ok in [0-9.]+m?s — 0 ok, 3 changed, 0 skipped, 0 failed, 0 ignored$`),
		"good2.raw":  regexp.MustCompile(`(?m)^good2\.raw: ok in [0-9.]+m?s — 0 ok, 3 changed, 0 skipped, 0 failed, 0 ignored$`),
	}
	for n, re := range summary {
		if !re.MatchString(r.stdout) {
			t.Errorf("no summary line for %s matching %s", n, re)
		}
	}
	// Every line is an image's (prefixed) or a summary line; the steps of
	// each image are all there, under its own prefix.
	prefixed := regexp.MustCompile(`^\[(broken\.raw|gpt\.qcow2|good1\.raw|good2\.raw)\] `)
	for _, l := range strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n") {
		if !prefixed.MatchString(l) && !regexp.MustCompile(`^(broken\.raw|gpt\.qcow2|good1\.raw|good2\.raw): `).MatchString(l) {
			t.Errorf("stdout line neither prefixed nor a summary: %q", l)
		}
	}
	for _, l := range strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n") {
		if !prefixed.MatchString(l) && l != "imgbake: baking 4 images, 2 at a time" && l != "imgbake: 2 of 4 images failed (exit 3)" {
			t.Errorf("stderr line not prefixed: %q", l)
		}
	}
	for _, n := range names[2:] {
		for _, re := range []string{`(?m)^\[` + n + `\] \[1/3\] write: /root/baked\s+changed`, `(?m)^\[` + n + `\] \[3/3\] run: echo done > /root/done\s+changed`} {
			if !regexp.MustCompile(strings.ReplaceAll(re, ".raw", `\.raw`)).MatchString(r.stdout) {
				t.Errorf("stdout does not match %s", re)
			}
		}
	}
	if !regexp.MustCompile(`(?m)^\[gpt\.qcow2\] \[2/3\] run: ! grep -q /boot/efi /etc/fstab\s+failed`).MatchString(r.stdout) {
		t.Error("the failing step of gpt.qcow2 is not reported under its prefix")
	}
	if !strings.Contains(r.stderr, "[broken.raw] imgbake: ") {
		t.Error("the broken image's error is not on stderr under its prefix")
	}

	for _, g := range good {
		m, err := testimages.ReadFiles(t, g, info.Format, info.RootPartition, "/root/baked", "/root/done")
		if err != nil {
			t.Fatal(err)
		}
		if string(m["/root/baked"]) != "baked by imgbake bake\n" || string(m["/root/done"]) != "done\n" {
			t.Errorf("%s was not baked: %q", g, m)
		}
	}
	for p, sum := range before {
		if sha256File(t, p) != sum {
			t.Errorf("%s changed although its run failed", p)
		}
	}
	noLeftovers(t, tmp)
}

// TestBakeOutputDirJSON bakes two images into --output-dir with --json:
// the inputs stay byte-identical, every event names its disk, and baking
// the outputs again reports them as already applied. An existing output is
// refused before anything starts.
func TestBakeOutputDirJSON(t *testing.T) {
	vmTests(t)
	tmp := privateTmp(t)
	info := testimages.InfoOf(t, testimages.NoPart)
	dir := t.TempDir()
	in := []string{copyImage(t, testimages.NoPart, filepath.Join(dir, "a.raw")), copyImage(t, testimages.NoPart, filepath.Join(dir, "b.raw"))}
	sums := []string{sha256File(t, in[0]), sha256File(t, in[1])}
	out := filepath.Join(t.TempDir(), "out")
	recipe := writeRecipe(t, bakeRecipe)

	r := imgbake(t, "bake", "--json", "--output-dir", out, recipe, in[0], in[1])
	if r.code != 0 {
		t.Fatalf("bake failed: %s", r)
	}
	results := map[string]map[string]any{}
	for _, l := range strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n") {
		var e map[string]any
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("not a JSON line: %q", l)
		}
		if e["event"] == "bake_end" {
			if e["exit_code"] != 0.0 || e["failed"] != 0.0 || e["images"] != 2.0 {
				t.Errorf("bake_end: %v", e)
			}
			continue
		}
		disk, _ := e["disk"].(string)
		if disk != in[0] && disk != in[1] {
			t.Errorf("event without its disk: %q", l)
		}
		if e["event"] == "image_result" {
			results[disk] = e
		}
	}
	for i, p := range in {
		want := filepath.Join(out, filepath.Base(p))
		if e := results[p]; e == nil || e["status"] != "ok" || e["output"] != want {
			t.Errorf("image_result of %s: %v", p, e)
		}
		if sha256File(t, p) != sums[i] {
			t.Errorf("the input %s changed", p)
		}
		b, err := testimages.ReadFile(t, want, info.Format, info.RootPartition, "/root/baked")
		if err != nil || string(b) != "baked by imgbake bake\n" {
			t.Errorf("%s: %q, %v", want, b, err)
		}
	}

	r = imgbake(t, "bake", "--output-dir", out, recipe, in[0], in[1])
	if r.code != ExitUsage || !strings.Contains(r.stderr, "already exists") || r.stdout != "" {
		t.Errorf("an existing output was not refused up front: %s", r)
	}

	outs := []string{filepath.Join(out, "a.raw"), filepath.Join(out, "b.raw")}
	r = imgbake(t, "bake", "-j", "2", recipe, outs[0], outs[1])
	if r.code != 0 {
		t.Fatalf("second bake: %s", r)
	}
	for _, n := range []string{"a.raw", "b.raw"} {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(n) + `: ok in \S+ — already applied, nothing changed$`).MatchString(r.stdout) {
			t.Errorf("%s is not reported as already applied:\n%s", n, r.stdout)
		}
		if !strings.Contains(r.stdout, "["+n+"] many: already applied at ") {
			t.Errorf("no prefixed already-applied line for %s:\n%s", n, r.stdout)
		}
	}

	// Another format: the outputs take its extension, each with its checksum.
	vmdks := filepath.Join(t.TempDir(), "vmdk")
	if r := imgbake(t, "bake", "--output-dir", vmdks, "--output-format", "vmdk", "--checksum", recipe, in[0], in[1]); r.code != 0 {
		t.Fatalf("bake --output-format vmdk: %s", r)
	}
	for _, n := range []string{"a.vmdk", "b.vmdk"} {
		if f, _ := qemuImgFormat(t, filepath.Join(vmdks, n)); f != "vmdk" {
			t.Errorf("%s is %q, want vmdk", n, f)
		}
		cmd := exec.Command("sha256sum", "-c", n+".sha256")
		cmd.Dir = vmdks
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("sha256sum -c %s.sha256: %v %s", n, err, b)
		}
	}
	noLeftovers(t, tmp)
}
