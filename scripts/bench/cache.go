package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Workload 10: the step-layer cache. A recipe whose first step is slow (a
// 30 s sleep: the benchmark's stand-in for a package install) and 10
// quick writes runs once with --cache; then the recipe with its last step
// edited runs with the cache (its first 10 steps come from the layers) and
// without it, alternating which goes first. Both write to -o outputs whose
// written files must be equal. Target: with the cache at least 10x faster.

const (
	variantCachePrime = "cache-prime"
	variantCached     = "cached"
	variantUncached   = "uncached"
	cacheSlowSeconds  = 30
	cacheQuickSteps   = 10
)

func cacheRecipe(last string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "name: bench layer cache\nsteps:\n  - run: sleep %d\n", cacheSlowSeconds)
	for i := 1; i < cacheQuickSteps; i++ {
		fmt.Fprintf(&b, "  - write: {path: /root/bench-c%02d, content: %s}\n", i, yq(fmt.Sprintf("quick step %d\n", i)))
	}
	fmt.Fprintf(&b, "  - write: {path: /root/bench-c%02d, content: %s}\n", cacheQuickSteps, yq(last))
	return b.String()
}

func (b *bench) layerCache(rep int) {
	img, cleanup, err := b.imageCopy()
	if err != nil {
		b.record("", &run{Workload: 10, Tool: toolIB, Variant: variantCachePrime, Rep: rep}, err)
		return
	}
	defer cleanup()
	cacheDir := filepath.Join(b.cfg.work, fmt.Sprintf("layer-cache-%d", rep))
	defer os.RemoveAll(cacheDir)
	out := func(v string) string { return filepath.Join(b.cfg.work, fmt.Sprintf("cache-%s-%d.qcow2", v, rep)) }
	argv := func(v, recipe string, cached bool) []string {
		a := []string{b.imgbake, "run", "--timings", "-a", img, "-o", out(v)}
		if cached {
			a = append(a, "--cache-dir", cacheDir)
		}
		return append(a, b.recipeFile(recipe))
	}
	prime := &run{Workload: 10, Tool: toolIB, Variant: variantCachePrime, Rep: rep}
	b.record("", prime, b.exec(prime, argv(variantCachePrime, cacheRecipe("first\n"), true)))
	os.Remove(out(variantCachePrime))
	edited := cacheRecipe("edited\n")
	order := []string{variantCached, variantUncached}
	if rep%2 == 0 {
		order[0], order[1] = order[1], order[0]
	}
	for _, v := range order {
		if b.ctx.Err() != nil {
			return
		}
		r := &run{Workload: 10, Tool: toolIB, Variant: v, Rep: rep}
		err := b.exec(r, argv(v, edited, v == variantCached))
		if err == nil && v == variantCached && cachedSteps(r) != cacheQuickSteps {
			err = fmt.Errorf("%d steps came from the cache, want %d", cachedSteps(r), cacheQuickSteps)
		}
		b.record("", r, err)
	}
	defer os.Remove(out(variantCached))
	defer os.Remove(out(variantUncached))
	if err := b.sameFiles(out(variantCached), out(variantUncached)); err != nil {
		b.fail(&run{Workload: 10, Tool: toolIB, Variant: variantCached, Rep: rep}, err)
	}
}

// sameFiles compares the files the recipe wrote in two outputs.
func (b *bench) sameFiles(a, c string) error {
	paths := make([]string, cacheQuickSteps)
	for i := range paths {
		paths[i] = fmt.Sprintf("/root/bench-c%02d", i+1)
	}
	read := func(img string) ([]byte, error) {
		out, err := exec.CommandContext(b.ctx, b.imgbake, append([]string{"cat", "-a", img}, paths...)...).Output()
		if err != nil {
			return nil, fmt.Errorf("imgbake cat %s: %w", img, err)
		}
		return out, nil
	}
	x, err := read(a)
	if err != nil {
		return err
	}
	y, err := read(c)
	if err != nil {
		return err
	}
	if !bytes.Equal(x, y) || !bytes.Contains(x, []byte("edited\n")) {
		return fmt.Errorf("the cached and uncached outputs differ:\n%s\n---\n%s", x, y)
	}
	return nil
}

func cachedSteps(r *run) int {
	n := 0
	for _, s := range r.Steps {
		if s.Status == "cached" {
			n++
		}
	}
	return n
}
