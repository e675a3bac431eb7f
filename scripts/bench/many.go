package main

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
)

// Workload 9: many images at once. `imgbake bake --jobs 4` runs the
// realistic 20-step recipe of workload 4 on 4 fresh copies of the test
// image, each in its own appliance, all at once; the baseline is one copy
// alone with `imgbake run`, measured in the same repetition (alternating
// which goes first). Both sample the whole process tree's RSS and PSS.
// Target: the 4 at once take at most 2.5x the wall time of one alone, and
// no image fails.

const (
	manyImages     = 4
	variantMany    = "bake4"
	variantManyOne = "run-alone"
)

// manySummaryRe is bake's summary line of one image.
var manySummaryRe = regexp.MustCompile(`^(\S+): (ok|failed|interrupted|not started)\b`)

func (b *bench) many(rep int) {
	order := []string{variantManyOne, variantMany}
	if rep%2 == 0 {
		order[0], order[1] = order[1], order[0]
	}
	recipe := realRecipe(b.appDir)
	for _, v := range order {
		if b.ctx.Err() != nil {
			return
		}
		if v == variantManyOne {
			r := &run{Workload: 9, Tool: toolIB, Variant: v, Rep: rep}
			img, cleanup, err := b.imageCopy()
			if err == nil {
				err = b.execWith(r, b.ibRecipe(recipe)(img), b.manyOpts(nil))
				cleanup()
			}
			b.record("", r, err)
			continue
		}
		b.bakeMany(rep, recipe)
	}
}

func (b *bench) manyOpts(lines *strings.Builder) procOpts {
	o := b.procOpts()
	o.tree = true
	verbose := o.logLines
	o.logLines = func(l string) {
		if lines != nil {
			lines.WriteString(l + "\n")
		}
		if verbose != nil {
			verbose(l)
		}
	}
	return o
}

// bakeMany measures one `imgbake bake --jobs 4` of 4 fresh copies.
func (b *bench) bakeMany(rep int, recipe string) {
	r := &run{Workload: 9, Tool: toolIB, Variant: variantMany, Rep: rep, Images: manyImages}
	var imgs []string
	for range manyImages {
		img, cleanup, err := b.imageCopy()
		defer cleanup()
		if err != nil {
			b.record("", r, err)
			return
		}
		imgs = append(imgs, img)
	}
	argv := append([]string{b.imgbake, "bake", "--jobs", fmt.Sprint(manyImages), b.recipeFile(recipe)}, imgs...)
	var out strings.Builder
	err := b.execWith(r, argv, b.manyOpts(&out))
	r.ImagesOK = countOK(out.String())
	if err == nil {
		err = checkMany(r, imgs, len(realSteps(b.appDir)))
	}
	b.record("", r, err)
}

// countOK counts the images bake's summary lines report ok.
func countOK(out string) int {
	n := 0
	for _, l := range strings.Split(out, "\n") {
		if m := manySummaryRe.FindStringSubmatch(l); m != nil && m[2] == "ok" {
			n++
		}
	}
	return n
}

// checkMany makes sure every image ran every step and was reported ok.
func checkMany(r *run, imgs []string, steps int) error {
	per := map[string]int{}
	for _, s := range r.Steps {
		per[s.Image]++
	}
	for _, img := range imgs {
		if n := per[filepath.Base(img)]; n != steps {
			return fmt.Errorf("%s: %d step lines, want %d", filepath.Base(img), n, steps)
		}
	}
	if r.ImagesOK != len(imgs) {
		return fmt.Errorf("%d of %d images reported ok", r.ImagesOK, len(imgs))
	}
	return nil
}
