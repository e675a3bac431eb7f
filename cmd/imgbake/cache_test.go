package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/imgbake/imgbake/testimages"
)

// cacheRecipe is a recipe of four steps whose last write is content; its
// second step renders a var and its third copies a host directory.
func cacheRecipe(first, content string) string {
	return fmt.Sprintf(`name: cached
vars:
  greeting: hello
steps:
  - write: {path: /root/a, content: %q}
  - run: echo "{{ .vars.greeting }}" > /root/b
  - copy_in: {src: ./files, dest: /opt}
  - hostname: cachetest
    when: os.family == "debian"
  - write: {path: /root/last, content: %q}
`, first, content)
}

func statusList(out string) []string {
	re := regexp.MustCompile(`(?m)^\[\s*\d+/\d+\] .{60} (\S+)`)
	var s []string
	for _, m := range re.FindAllStringSubmatch(out, -1) {
		s = append(s, m[1])
	}
	return s
}

// TestLayerCache: a re-run with the last step edited takes the first four
// from the cache and gives the same filesystem as a run without it; an
// edit in a host file, a var or an earlier step misses from there on.
func TestLayerCache(t *testing.T) {
	vmTests(t)
	info := testimages.InfoOf(t, testimages.GPT)
	in := testimages.Fresh(t, testimages.GPT)
	before := sha256File(t, in)
	cache, dir, outs := t.TempDir(), t.TempDir(), t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "files"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "files", "x"), []byte("x1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	recipe := filepath.Join(dir, "r.yaml")
	first := "a\n"
	run := func(content, out string, extra ...string) []string {
		t.Helper()
		if err := os.WriteFile(recipe, []byte(cacheRecipe(first, content)), 0o644); err != nil {
			t.Fatal(err)
		}
		args := append([]string{"run", "-a", in, "-o", filepath.Join(outs, out)}, extra...)
		r := imgbake(t, append(args, recipe)...)
		if r.code != 0 {
			t.Fatalf("%s: %s", out, r)
		}
		return statusList(r.stdout)
	}
	cached := []string{"--cache-dir", cache}
	if got := strings.Join(run("one\n", "1.qcow2", cached...), ","); got != "changed,changed,changed,changed,changed" {
		t.Errorf("first run: %s", got)
	}
	if got := strings.Join(run("two\n", "2.qcow2", cached...), ","); got != "cached,cached,cached,cached,changed" {
		t.Errorf("re-run with the last step edited: %s", got)
	}
	run("two\n", "3.qcow2") // no cache: the reference
	t2, err := testimages.Tree(t, filepath.Join(outs, "2.qcow2"), "qcow2", info.RootPartition)
	if err != nil {
		t.Fatal(err)
	}
	t3, err := testimages.Tree(t, filepath.Join(outs, "3.qcow2"), "qcow2", info.RootPartition)
	if err != nil {
		t.Fatal(err)
	}
	delete(t2, "/var/lib/imgbake/state.json") // holds the run's times
	delete(t3, "/var/lib/imgbake/state.json")
	if len(t2) != len(t3) {
		t.Errorf("cached result has %d entries, uncached %d", len(t2), len(t3))
	}
	for p, w := range t3 {
		if t2[p] != w {
			t.Errorf("%s: cached %q, uncached %q", p, t2[p], w)
		}
	}
	files, err := testimages.ReadFiles(t, filepath.Join(outs, "2.qcow2"), "qcow2", info.RootPartition, "/root/b", "/root/last", "/opt/files/x", "/etc/hostname")
	if err != nil || string(files["/root/b"]) != "hello\n" || string(files["/root/last"]) != "two\n" || string(files["/opt/files/x"]) != "x1\n" || string(files["/etc/hostname"]) != "cachetest\n" {
		t.Errorf("files %q, %v", files, err)
	}
	// A host file the third step reads changed: steps 1-2 cached.
	if err := os.WriteFile(filepath.Join(dir, "files", "x"), []byte("x2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(run("two\n", "4.qcow2", cached...), ","); got != "cached,cached,changed,changed,changed" {
		t.Errorf("host file changed: %s", got)
	}
	// A var the second step renders: step 1 cached.
	if got := strings.Join(run("two\n", "5.qcow2", append(cached, "--var", "greeting=hi")...), ","); got != "cached,changed,changed,changed,changed" {
		t.Errorf("var changed: %s", got)
	}
	// The first step edited: nothing from the cache.
	first = "A\n"
	if got := strings.Join(run("two\n", "7.qcow2", cached...), ","); got != "changed,changed,changed,changed,changed" {
		t.Errorf("first step changed: %s", got)
	}
	first = "a\n"
	// --refresh runs everything.
	if got := strings.Join(run("two\n", "6.qcow2", append(cached, "--refresh")...), ","); got != "changed,changed,changed,changed,changed" {
		t.Errorf("--refresh: %s", got)
	}
	if sha256File(t, in) != before {
		t.Error("the input changed")
	}
	// The cache lists its entries, and prune empties it.
	r := imgbake(t, "cache", "ls", "--cache-dir", cache)
	if r.code != 0 || !strings.Contains(r.stdout, "write: /root/last") {
		t.Errorf("cache ls: %s", r)
	}
	r = imgbake(t, "cache", "prune", "--cache-dir", cache, "--max-size", "0")
	if r.code != 0 || !strings.Contains(r.stdout, "0 B left") {
		t.Errorf("cache prune: %s", r)
	}
	if ents, _ := os.ReadDir(filepath.Join(cache, "layers")); len(ents) != 0 {
		t.Errorf("layers left after prune: %v", ents)
	}
}

// TestLayerCacheKilled: a run killed after taking layers leaves no entry
// and no layer in the cache; the next run cleans its directory up.
func TestLayerCacheKilled(t *testing.T) {
	vmTests(t)
	privateTmp(t)
	disk := testimages.Fresh(t, testimages.NoPart)
	cache := t.TempDir()
	recipe := writeRecipe(t, "name: killed\nsteps:\n  - write: {path: /root/a, content: \"a\\n\"}\n  - run: sleep 120\n    cache: false\n")
	p := startImgbake(t, "run", "--cache-dir", cache, "-a", disk, "-o", filepath.Join(t.TempDir(), "out.qcow2"), recipe)
	p.waitFor(t, "[1/2]", 2*time.Minute)
	// Kill it once the first step's layer is taken (its new overlay exists).
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if m, _ := filepath.Glob(filepath.Join(cache, "runs", "run-*", "top-1.qcow2")); len(m) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first step's layer was never taken")
		}
	}
	must(t, p.cmd.Process.Kill())
	p.wait(t, 10*time.Second)
	for _, d := range []string{"entries", "layers"} {
		if ents, _ := os.ReadDir(filepath.Join(cache, d)); len(ents) != 0 {
			t.Errorf("a killed run left %s: %v", d, ents)
		}
	}
	r := imgbake(t, "cache", "ls", "--cache-dir", cache)
	if r.code != 0 || !strings.Contains(r.stdout, "0 entries") {
		t.Errorf("cache ls: %s", r)
	}
	if runs, _ := os.ReadDir(filepath.Join(cache, "runs")); len(runs) != 0 {
		t.Errorf("the killed run's directory is still there: %v", runs)
	}
}
