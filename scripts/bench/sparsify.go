package main

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// Workload 11: sparsify. The test image gets a 500 MB file of random data,
// committed, then the file is deleted and committed again: the image file
// still holds the 500 MB. `imgbake sparsify -o` and `virt-sparsify` write
// it out, plain and with --compress, alternating which goes first. Targets
// (issue 18): imgbake's output at most 5 % larger than virt-sparsify's,
// and imgbake at least 3x faster.

const (
	variantSparsify   = "sparsify"
	variantSparsifyC  = "sparsify-compress"
	sparsifyDeletedMB = 500
)

// sparseInput makes the image with the deleted file, once per repetition.
func (b *bench) sparseInput() (string, func(), error) {
	img, cleanup, err := b.imageCopy()
	if err != nil {
		return "", cleanup, err
	}
	tool := b.imgbake
	if tool == "" {
		tool = b.cfg.Imgbake
	}
	fill := fmt.Sprintf("steps:\n  - run: dd if=/dev/urandom of=/var/tmp/bench-big bs=1M count=%d status=none\n", sparsifyDeletedMB)
	del := "steps:\n  - delete: /var/tmp/bench-big\n"
	for _, recipe := range []string{fill, del} {
		if err := runQuiet(tool, "run", "-a", img, b.recipeFile(recipe)); err != nil {
			cleanup()
			return "", func() {}, fmt.Errorf("preparing the sparsify input: %w", err)
		}
	}
	return img, cleanup, nil
}

func (b *bench) sparsify(rep int) {
	in, cleanup, err := b.sparseInput()
	if err != nil {
		b.record("", &run{Workload: 11, Tool: toolIB, Variant: variantSparsify, Rep: rep}, err)
		return
	}
	defer cleanup()
	for _, v := range []string{variantSparsify, variantSparsifyC} {
		compress := v == variantSparsifyC
		jobs := []string{toolIB, toolLG}
		if rep%2 == 0 {
			jobs[0], jobs[1] = jobs[1], jobs[0]
		}
		for _, tool := range jobs {
			if !b.cfg.tools[tool] || b.ctx.Err() != nil {
				continue
			}
			out := filepath.Join(b.cfg.work, fmt.Sprintf("sparse-%s-%s-%d.qcow2", tool, v, rep))
			var argv []string
			if tool == toolIB {
				argv = []string{b.imgbake, "sparsify", "-a", in, "-o", out}
			} else {
				argv = []string{"virt-sparsify", "--format", "qcow2", "--convert", "qcow2", in, out}
			}
			if compress {
				argv = append(argv, "--compress")
			}
			r := &run{Workload: 11, Tool: tool, Variant: v, Rep: rep}
			err := b.exec(r, argv)
			if err == nil {
				r.OutputBytes, err = allocatedBytes(out)
			}
			os.Remove(out)
			b.record("", r, err)
		}
	}
}

// allocatedBytes is the host disk a file takes.
func allocatedBytes(path string) (int64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fi.Size(), nil
	}
	return st.Blocks * 512, nil
}

// addSparsify adds workload 11's rows.
func addSparsify(a *an, add func(metric)) {
	mib := func(r *run) (float64, bool) { return float64(r.OutputBytes) / (1 << 20), r.OutputBytes > 0 }
	for _, v := range []string{variantSparsify, variantSparsifyC} {
		label := "sparsify -o out.qcow2"
		if v == variantSparsifyC {
			label += " --compress"
		}
		if len(a.get(toolIB, v)) == 0 && len(a.get(toolLG, v)) == 0 {
			continue
		}
		timeRow := metric{Workload: 11, Name: fmt.Sprintf("%s after deleting a %d MB file (virt-sparsify)", label, sparsifyDeletedMB), Unit: "s",
			IB: summarize(a.vals(toolIB, v, wallS)), LG: summarize(a.vals(toolLG, v, wallS)), Target: "≥ 3x"}
		if timeRow.IB != nil && timeRow.LG != nil {
			ok := timeRow.LG.Median/timeRow.IB.Median >= 3
			timeRow.Met = &ok
		}
		add(timeRow)
		size := metric{Workload: 11, Name: "the output's size on disk", Unit: "MiB",
			IB: summarize(a.vals(toolIB, v, mib)), LG: summarize(a.vals(toolLG, v, mib)), Target: "≤ 1.05 × virt-sparsify's"}
		if size.IB != nil && size.LG != nil {
			ok := size.IB.Median <= 1.05*size.LG.Median
			size.Met = &ok
		}
		add(size)
	}
}
