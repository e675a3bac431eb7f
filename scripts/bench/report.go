package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strings"
)

// stat summarises one metric's values for one tool.
type stat struct {
	Median float64   `json:"median"`
	Min    float64   `json:"min"`
	Max    float64   `json:"max"`
	N      int       `json:"n"`
	Values []float64 `json:"values"`
}

func summarize(v []float64) *stat {
	if len(v) == 0 {
		return nil
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return &stat{Median: med, Min: s[0], Max: s[len(s)-1], N: len(s), Values: v}
}

// metric is one row of the table.
type metric struct {
	Workload int     `json:"workload"`
	Name     string  `json:"name"`
	Unit     string  `json:"unit"`
	Higher   bool    `json:"higher_is_better,omitempty"`
	IB       *stat   `json:"imgbake,omitempty"`
	LG       *stat   `json:"libguestfs,omitempty"`
	Ratio    float64 `json:"ratio,omitempty"` // how many times better imgbake is (medians)
	Target   string  `json:"target,omitempty"`
	Met      *bool   `json:"met,omitempty"`
	Detail   bool    `json:"detail,omitempty"` // a breakdown row, indented in the table
}

// an indexes the successful runs.
type an struct {
	runs map[string][]*run // tool/variant → runs in order
}

func newAn(res *results) *an {
	a := &an{runs: map[string][]*run{}}
	for _, r := range res.Runs {
		if r.Err != "" || r.Variant == "warmup" {
			continue
		}
		k := r.Tool + "/" + r.Variant
		a.runs[k] = append(a.runs[k], r)
	}
	return a
}

func (a *an) get(tool, variant string) []*run { return a.runs[tool+"/"+variant] }

// vals applies f to each run of tool/variant.
func (a *an) vals(tool, variant string, f func(*run) (float64, bool)) []float64 {
	var out []float64
	for _, r := range a.get(tool, variant) {
		if v, ok := f(r); ok {
			out = append(out, v)
		}
	}
	return out
}

// perRep pairs runs of two variants from the same repetition.
func (a *an) perRep(tool, v1, v2 string, f func(r1, r2 *run) (float64, bool)) []float64 {
	byRep := map[int]*run{}
	for _, r := range a.get(tool, v1) {
		byRep[r.Rep] = r
	}
	var out []float64
	for _, r2 := range a.get(tool, v2) {
		if r1 := byRep[r2.Rep]; r1 != nil {
			if v, ok := f(r1, r2); ok {
				out = append(out, v)
			}
		}
	}
	return out
}

func wallS(r *run) (float64, bool) { return r.WallMS / 1000, true }

// firstStepDone is when imgbake printed its first step line, in seconds.
func firstStepDone(r *run) (float64, bool) {
	if len(r.Steps) == 0 {
		return 0, false
	}
	return r.Steps[0].AtMS / 1000, true
}

// readyS is when imgbake was ready to run its first step: the first step
// line's arrival minus the step's own printed duration.
func readyS(r *run) (float64, bool) {
	if len(r.Steps) == 0 {
		return 0, false
	}
	return (r.Steps[0].AtMS - r.Steps[0].DurMS) / 1000, true
}

func timing(label string) func(*run) (float64, bool) {
	return func(r *run) (float64, bool) {
		v, ok := r.Timings[label]
		return v, ok
	}
}

// firstProgress is the driver-clock time of virt-customize's first progress
// line starting with prefix.
func firstProgress(r *run, prefix string) (float64, bool) {
	for _, p := range r.Progress {
		if strings.HasPrefix(p.Msg, prefix) {
			return p.AtMS, true
		}
	}
	return 0, false
}

// examining is how long virt-customize's "Examining the guest" phase took on
// its own clock.
func examining(r *run) (float64, bool) {
	for i, p := range r.Progress {
		if strings.HasPrefix(p.Msg, "Examining the guest") && i+1 < len(r.Progress) {
			return r.Progress[i+1].OwnSec - p.OwnSec, true
		}
	}
	return 0, false
}

// peak is the largest VmHWM, in MiB, of the run's processes whose name
// matches.
func peak(match func(string) bool) func(*run) (float64, bool) {
	return func(r *run) (float64, bool) {
		var m int64
		for _, p := range r.Peaks {
			if match(p.Name) && p.HWMkB > m {
				m = p.HWMkB
			}
		}
		return float64(m) / 1024, m > 0
	}
}

func isQEMU(n string) bool { return strings.HasPrefix(n, "qemu-system") }

func qemuMem(r *run) (float64, bool) {
	for _, p := range r.Peaks {
		if p.MemArg > 0 {
			return float64(p.MemArg), true
		}
	}
	return 0, false
}

// ibAll returns every successful imgbake run (any variant).
func (a *an) all(tool string) []*run {
	var out []*run
	keys := make([]string, 0, len(a.runs))
	for k := range a.runs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if strings.HasPrefix(k, tool+"/") {
			out = append(out, a.runs[k]...)
		}
	}
	return out
}

func valsOf(runs []*run, f func(*run) (float64, bool)) []float64 {
	var out []float64
	for _, r := range runs {
		if v, ok := f(r); ok {
			out = append(out, v)
		}
	}
	return out
}

// timingLabels lists the --timings labels of the runs in the order
// imgbake printed them (they differ between warm and cold starts).
func timingLabels(runs []*run) []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range runs {
		for _, k := range r.TimingKeys {
			if !seen[k] {
				seen[k] = true
				out = append(out, k)
			}
		}
	}
	return out
}

func analyze(res *results, payload payloadInfo, cfg config) []metric {
	a := newAn(res)
	var ms []metric
	add := func(m metric) {
		if m.IB == nil && m.LG == nil {
			return
		}
		if m.IB != nil && m.LG != nil && m.IB.Median > 0 && m.LG.Median > 0 {
			if m.Higher {
				m.Ratio = m.IB.Median / m.LG.Median
			} else {
				m.Ratio = m.LG.Median / m.IB.Median
			}
		}
		ms = append(ms, m)
	}
	met := func(ok bool) *bool { return &ok }

	// 1. Start to first step.
	ready := metric{Workload: 1, Name: "ready to run the first step (virt-customize: \"Running:\" printed)", Unit: "s",
		IB: summarize(a.vals(toolIB, "run1", readyS)),
		LG: summarize(a.vals(toolLG, "run1", func(r *run) (float64, bool) {
			v, ok := firstProgress(r, "Running:")
			return v / 1000, ok
		})),
		Target: "≤ 2.5 s"}
	if ready.IB != nil {
		ready.Met = met(ready.IB.Median <= 2.5)
	}
	add(ready)
	// Issue 8's target: with warm start, process start → first step done.
	firstDone := metric{Workload: 1, Name: "start → first step done, warm start (virt-customize: whole call)", Unit: "s",
		IB: summarize(a.vals(toolIB, "run1", firstStepDone)),
		LG: summarize(a.vals(toolLG, "run1", wallS)), Target: "≤ 1.0 s (issue 8)"}
	if firstDone.IB != nil {
		firstDone.Met = met(firstDone.IB.Median <= 1.0)
	}
	add(firstDone)
	add(metric{Workload: 1, Name: "whole call, one `true` step", Unit: "s",
		IB: summarize(a.vals(toolIB, "run1", wallS)), LG: summarize(a.vals(toolLG, "run1", wallS))})
	for _, l := range timingLabels(a.get(toolIB, "run1")) {
		add(metric{Workload: 1, Name: "imgbake --timings: " + l, Unit: "ms", Detail: true,
			IB: summarize(a.vals(toolIB, "run1", timing(l)))})
	}
	if cold := a.get(toolIB, "run1-cold"); len(cold) > 0 {
		add(metric{Workload: 1, Name: "imgbake cold boot (IMGBAKE_COLD=1): ready to run the first step", Unit: "s",
			IB: summarize(a.vals(toolIB, "run1-cold", readyS)), LG: summarize(a.vals(toolLG, "run1", func(r *run) (float64, bool) {
				v, ok := firstProgress(r, "Running:")
				return v / 1000, ok
			}))})
		add(metric{Workload: 1, Name: "imgbake cold boot: start → first step done (virt-customize: whole call)", Unit: "s", Detail: true,
			IB: summarize(a.vals(toolIB, "run1-cold", firstStepDone)), LG: summarize(a.vals(toolLG, "run1", wallS))})
		add(metric{Workload: 1, Name: "imgbake cold boot: whole call, one `true` step", Unit: "s", Detail: true,
			IB: summarize(a.vals(toolIB, "run1-cold", wallS)), LG: summarize(a.vals(toolLG, "run1", wallS))})
		for _, l := range timingLabels(cold) {
			add(metric{Workload: 1, Name: "imgbake cold --timings: " + l, Unit: "ms", Detail: true,
				IB: summarize(a.vals(toolIB, "run1-cold", timing(l)))})
		}
	}
	add(metric{Workload: 1, Name: "virt-customize: \"Examining the guest\"", Unit: "s", Detail: true,
		LG: summarize(a.vals(toolLG, "run1", examining))})

	// 2. Per run step.
	slope := func(tool, base, loaded string, n float64, f func(*run) (float64, bool)) []float64 {
		return a.perRep(tool, base, loaded, func(r1, r2 *run) (float64, bool) {
			v1, ok1 := f(r1)
			v2, ok2 := f(r2)
			return (v2 - v1) / n, ok1 && ok2
		})
	}
	wallMS := func(r *run) (float64, bool) { return r.WallMS, true }
	runSlope := metric{Workload: 2, Name: "`run: true` step: slope (T21 − T1) / 20", Unit: "ms",
		IB: summarize(slope(toolIB, "run1", "run21", 20, wallMS)), LG: summarize(slope(toolLG, "run1", "run21", 20, wallMS)),
		Target: "≤ 100 ms (both slopes)"}
	runPhase := summarize(slope(toolIB, "run1", "run21", 20, timing("steps")))
	if runSlope.IB != nil && runPhase != nil {
		// Boot jitter divided by 20 can exceed a step's cost: the target is
		// met only if the wall-clock slope and the in-process slope agree.
		runSlope.Met = met(math.Max(runSlope.IB.Median, runPhase.Median) <= 100)
	}
	add(runSlope)
	add(metric{Workload: 2, Name: "imgbake: slope of the --timings steps phase", Unit: "ms", Detail: true, IB: runPhase})
	add(metric{Workload: 2, Name: "imgbake: `run: true` step as printed", Unit: "ms", Detail: true,
		IB: summarize(stepDurs(a.get(toolIB, "run21"), 1))})
	add(metric{Workload: 2, Name: "whole call, 21 `true` steps", Unit: "s", Detail: true,
		IB: summarize(a.vals(toolIB, "run21", wallS)), LG: summarize(a.vals(toolLG, "run21", wallS))})

	// 3. Per write.
	wSlope := metric{Workload: 3, Name: "small `write`: slope (T(1+50) − T1) / 50", Unit: "ms",
		IB: summarize(slope(toolIB, "run1", "write50", 50, wallMS)), LG: summarize(slope(toolLG, "run1", "write50", 50, wallMS)),
		Target: "≤ 5 ms (both slopes)"}
	writePhase := summarize(slope(toolIB, "run1", "write50", 50, timing("steps")))
	if wSlope.IB != nil && writePhase != nil {
		wSlope.Met = met(math.Max(wSlope.IB.Median, writePhase.Median) <= 5)
	}
	add(wSlope)
	add(metric{Workload: 3, Name: "imgbake: slope of the --timings steps phase", Unit: "ms", Detail: true, IB: writePhase})
	add(metric{Workload: 3, Name: "imgbake: `write` step as printed", Unit: "ms", Detail: true,
		IB: summarize(stepDurs(a.get(toolIB, "write50"), 2))})
	add(metric{Workload: 3, Name: "whole call, 1 `true` + 50 writes", Unit: "s", Detail: true,
		IB: summarize(a.vals(toolIB, "write50", wallS)), LG: summarize(a.vals(toolLG, "write50", wallS))})

	// 4. Realistic recipe.
	real := metric{Workload: 4, Name: "realistic 20-step recipe, whole call", Unit: "s",
		IB: summarize(a.vals(toolIB, "real20", wallS)), LG: summarize(a.vals(toolLG, "real20", wallS)), Target: "≥ 5x"}
	if real.IB != nil && real.LG != nil {
		real.Met = met(real.LG.Median/real.IB.Median >= 5)
	}
	add(real)
	cpu := func(r *run) (float64, bool) { return (r.UserCPUMS + r.SysCPUMS) / 1000, true }
	add(metric{Workload: 4, Name: "CPU time of the process tree (user + sys)", Unit: "s", Detail: true,
		IB: summarize(a.vals(toolIB, "real20", cpu)), LG: summarize(a.vals(toolLG, "real20", cpu))})
	add(metric{Workload: 4, Name: "imgbake: --timings steps phase", Unit: "ms", Detail: true,
		IB: summarize(a.vals(toolIB, "real20", timing("steps")))})

	// 5. Copy-in.
	if mb := payload.MB(); mb > 0 {
		netIB := a.perRep(toolIB, "run1", "copy", func(base, c *run) (float64, bool) {
			d := (c.WallMS - base.WallMS) / 1000
			return mb / d, d > 0
		})
		netLG := a.perRep(toolLG, "launch", "copy", func(base, c *run) (float64, bool) {
			d := (c.WallMS - base.WallMS) / 1000
			return mb / d, d > 0
		})
		cp := metric{Workload: 5, Name: fmt.Sprintf("copy-in %.0f MB (%d files), net of boot (T − T(boot only))", mb, payload.Files),
			Unit: "MB/s", Higher: true, IB: summarize(netIB), LG: summarize(netLG), Target: "≥ 70 MB/s and ≥ 5x"}
		if cp.IB != nil && cp.LG != nil {
			cp.Met = met(cp.IB.Median >= 70 && cp.IB.Median/cp.LG.Median >= 5)
		}
		add(cp)
		add(metric{Workload: 5, Name: "imgbake: the copy_in step alone (as printed)", Unit: "MB/s", Higher: true, Detail: true,
			IB: summarize(a.vals(toolIB, "copy", func(r *run) (float64, bool) {
				if len(r.Steps) == 0 || r.Steps[0].DurMS <= 0 {
					return 0, false
				}
				return mb / (r.Steps[0].DurMS / 1000), true
			}))})
		add(metric{Workload: 5, Name: "imgbake: --timings commit/export after the copy", Unit: "ms", Detail: true,
			IB: summarize(a.vals(toolIB, "copy", timing("commit/export")))})
		add(metric{Workload: 5, Name: "whole call (virt-copy-in)", Unit: "s", Detail: true,
			IB: summarize(a.vals(toolIB, "copy", wallS)), LG: summarize(a.vals(toolLG, "copy", wallS))})
		add(metric{Workload: 5, Name: "boot-only baseline (imgbake 1 step; guestfish --rw -i command true)", Unit: "s", Detail: true,
			IB: summarize(a.vals(toolIB, "run1", wallS)), LG: summarize(a.vals(toolLG, "launch", wallS))})
	}

	// 6. Per-task boot model.
	n := cfg.Tasks
	taskSums := func(tool string) []float64 {
		byRep := map[int][]*run{}
		for _, r := range a.get(tool, "task") {
			byRep[r.Rep] = append(byRep[r.Rep], r)
		}
		var out []float64
		for _, rs := range byRep {
			if len(rs) != n {
				continue // a task failed: no total for this repetition
			}
			var s float64
			for _, r := range rs {
				s += r.WallMS / 1000
			}
			out = append(out, s)
		}
		return out
	}
	recipeN := fmt.Sprintf("recipe%d", n)
	t6 := metric{Workload: 6, Name: fmt.Sprintf("%d × `guestfish -a IMG -i command true` vs one %d-step imgbake recipe", n, n), Unit: "s",
		IB: summarize(a.vals(toolIB, recipeN, wallS)), LG: summarize(taskSums(toolLG)), Target: "≥ 35x"}
	if t6.IB != nil && t6.LG != nil {
		if n == 20 {
			t6.Met = met(t6.LG.Median/t6.IB.Median >= 35)
		} else {
			t6.Target = "≥ 35x (at 20 tasks)"
		}
	}
	add(t6)
	add(metric{Workload: 6, Name: fmt.Sprintf("%d × one-step `imgbake run` vs %d × guestfish", n, n), Unit: "s",
		IB: summarize(taskSums(toolIB)), LG: summarize(taskSums(toolLG))})
	ibSums, recipes := taskSums(toolIB), a.vals(toolIB, recipeN, wallS)
	if len(ibSums) > 0 && len(recipes) > 0 {
		add(metric{Workload: 6, Name: fmt.Sprintf("imgbake: %d one-step runs ÷ one %d-step recipe", n, n), Unit: "x", Detail: true,
			IB: summarize([]float64{summarize(ibSums).Median / summarize(recipes).Median})})
	}
	add(metric{Workload: 6, Name: "one task (one call)", Unit: "s", Detail: true,
		IB: summarize(a.vals(toolIB, "task", wallS)), LG: summarize(a.vals(toolLG, "task", wallS))})

	// 7. Resources. RSS comes from sampling every process of the tree.
	if cfg.sample > 0 {
		ibAll, lgAll := a.all(toolIB), a.all(toolLG)
		own := metric{Workload: 7, Name: "tool's own peak RSS, all runs (imgbake / virt-customize, guestfish)", Unit: "MiB",
			IB:     summarize(valsOf(ibAll, peak(func(n string) bool { return n == "imgbake" }))),
			LG:     summarize(valsOf(lgAll, peak(func(n string) bool { return n == "virt-customize" || n == "guestfish" || n == "virt-copy-in" }))),
			Target: "≤ 50 MB (47.7 MiB), worst run"}
		if own.IB != nil {
			own.Met = met(own.IB.Max <= 50e6/(1<<20))
		}
		add(own)
		if len(a.get(toolIB, "copy")) > 0 {
			add(metric{Workload: 7, Name: "tool's own peak RSS during the copy-in", Unit: "MiB", Detail: true,
				IB: summarize(a.vals(toolIB, "copy", peak(func(n string) bool { return n == "imgbake" }))),
				LG: summarize(a.vals(toolLG, "copy", peak(func(n string) bool { return n == "guestfish" || n == "virt-copy-in" })))})
		}
		mem := metric{Workload: 7, Name: "appliance memory (qemu -m)", Unit: "MiB",
			IB: summarize(valsOf(ibAll, qemuMem)), LG: summarize(valsOf(lgAll, qemuMem)), Target: "≤ 512 MiB"}
		if mem.IB != nil {
			mem.Met = met(mem.IB.Max <= 512)
		}
		add(mem)
		add(metric{Workload: 7, Name: "qemu peak RSS, all runs", Unit: "MiB",
			IB: summarize(valsOf(ibAll, peak(isQEMU))), LG: summarize(valsOf(lgAll, peak(isQEMU)))})
		add(metric{Workload: 7, Name: "wait4 rusage maxrss of the whole tree (max over processes)", Unit: "MiB", Detail: true,
			IB: summarize(valsOf(ibAll, func(r *run) (float64, bool) { return float64(r.MaxRSSkB) / 1024, r.MaxRSSkB > 0 })),
			LG: summarize(valsOf(lgAll, func(r *run) (float64, bool) { return float64(r.MaxRSSkB) / 1024, r.MaxRSSkB > 0 }))})
	}
	add(metric{Workload: 7, Name: "guest memory in use after the 20-step recipe (MemTotal − MemAvailable)", Unit: "MiB", Detail: true,
		IB: summarize(a.vals(toolIB, "mem", func(r *run) (float64, bool) {
			t, ok1 := r.Meminfo["MemTotal"]
			av, ok2 := r.Meminfo["MemAvailable"]
			return float64(t-av) / 1024, ok1 && ok2
		}))})
	addAnsible(a, add)
	addMany(res, a, add)
	addCache(a, add)
	addSparsify(a, add)
	return ms
}

// addMany adds workload 9: 4 images baked at once vs one alone.
func addMany(res *results, a *an, add func(metric)) {
	met := func(ok bool) *bool { return &ok }
	many, alone := a.get(toolIB, variantMany), a.get(toolIB, variantManyOne)
	if len(many) == 0 && len(alone) == 0 && !slices.ContainsFunc(res.Runs, func(r *run) bool { return r.Variant == variantMany }) {
		return
	}
	add(metric{Workload: 9, Name: fmt.Sprintf("%d copies baked at once: `imgbake bake --jobs %d` (the 20-step recipe of workload 4)", manyImages, manyImages),
		Unit: "s", IB: summarize(valsOf(many, wallS))})
	add(metric{Workload: 9, Name: "one copy alone: `imgbake run` (the same recipe)", Unit: "s", Detail: true,
		IB: summarize(valsOf(alone, wallS))})
	ratio := metric{Workload: 9, Name: fmt.Sprintf("%d at once ÷ one alone (wall time, per repetition)", manyImages), Unit: "x",
		IB: summarize(a.perRep(toolIB, variantManyOne, variantMany, func(one, m *run) (float64, bool) {
			return m.WallMS / one.WallMS, one.WallMS > 0
		})), Target: "≤ 2.5x"}
	if ratio.IB != nil {
		ratio.Met = met(ratio.IB.Median <= 2.5)
	}
	add(ratio)
	// Failures count every bake run, failed ones included (a run whose
	// summary lines are missing counts all its images as failed).
	var failed []float64
	for _, r := range res.Runs {
		if r.Variant == variantMany && r.Images > 0 {
			failed = append(failed, float64(r.Images-r.ImagesOK))
		}
	}
	fails := metric{Workload: 9, Name: "images that failed, per bake run", Unit: "images", IB: summarize(failed), Target: "0"}
	if fails.IB != nil {
		fails.Met = met(fails.IB.Max == 0)
	}
	add(fails)
	kb := func(f func(*run) int64) func(*run) (float64, bool) {
		return func(r *run) (float64, bool) { v := f(r); return float64(v) / 1024, v > 0 }
	}
	rss, pss := kb(func(r *run) int64 { return r.TreeRSSkB }), kb(func(r *run) int64 { return r.TreePSSkB })
	add(metric{Workload: 9, Name: fmt.Sprintf("peak host RSS of the whole process tree (imgbake + %d qemu: sum of VmRSS at one sample)", manyImages),
		Unit: "MiB", IB: summarize(valsOf(many, rss))})
	add(metric{Workload: 9, Name: "the same, PSS (pages shared between the qemus, e.g. the saved appliance's memory file, counted once)",
		Unit: "MiB", Detail: true, IB: summarize(valsOf(many, pss))})
	add(metric{Workload: 9, Name: "one copy alone: peak RSS of its tree", Unit: "MiB", Detail: true,
		IB: summarize(valsOf(alone, rss))})
	add(metric{Workload: 9, Name: "one copy alone: peak PSS of its tree", Unit: "MiB", Detail: true,
		IB: summarize(valsOf(alone, pss))})
	var qemus []float64
	for _, r := range many {
		for _, p := range r.Peaks {
			if isQEMU(p.Name) {
				qemus = append(qemus, float64(p.HWMkB)/1024)
			}
		}
	}
	add(metric{Workload: 9, Name: "each qemu's peak RSS (VmHWM) in the bake runs", Unit: "MiB", Detail: true, IB: summarize(qemus)})
}

// stepDurs is every printed step duration from index first on.
func stepDurs(runs []*run, first int) []float64 {
	var out []float64
	for _, r := range runs {
		for _, s := range r.Steps {
			if s.Index >= first {
				out = append(out, s.DurMS)
			}
		}
	}
	return out
}

func fmtVal(v float64, unit string) string {
	switch unit {
	case "s":
		return fmt.Sprintf("%.2f s", v)
	case "ms":
		if math.Abs(v) >= 100 {
			return fmt.Sprintf("%.0f ms", v)
		}
		return fmt.Sprintf("%.1f ms", v)
	case "MB/s":
		return fmt.Sprintf("%.1f MB/s", v)
	case "MiB":
		return fmt.Sprintf("%.0f MiB", v)
	case "x":
		return fmt.Sprintf("%.1fx", v)
	}
	return fmt.Sprintf("%.3g %s", v, unit)
}

func fmtStat(s *stat, unit string) string {
	if s == nil {
		return "—"
	}
	if s.N == 1 {
		return fmtVal(s.Median, unit)
	}
	lo, hi := fmtVal(s.Min, unit), fmtVal(s.Max, unit)
	if u := " " + unit; unit != "x" {
		lo = strings.TrimSuffix(lo, u)
	}
	return fmt.Sprintf("%s (%s – %s, n=%d)", fmtVal(s.Median, unit), lo, hi, s.N)
}

// printTable writes the metrics as a Markdown table.
func printTable(w io.Writer, res *results) {
	m := res.Machine
	fmt.Fprintf(w, "\nMachine: %d cores (%s), %d MiB, %s, %s, host kernel %s, %s; load average %.2f → %.2f\n",
		m.Cores, m.CPU, m.MemMiB, strings.ToUpper(m.Accel), m.QEMU, m.HostKernel, m.Libguestfs, m.LoadStart, m.LoadEnd)
	fmt.Fprintf(w, "Config: reps %d, heavy reps %d, tasks %d, workloads %v; medians (min – max, n)\n\n",
		res.Config.Reps, res.Config.HeavyReps, res.Config.Tasks, res.Config.Workloads)
	fmt.Fprintln(w, "| # | metric | imgbake | libguestfs | ratio | target | met |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
	for _, x := range res.Metrics {
		name := x.Name
		if x.Detail {
			name = "↳ " + name
		}
		ratio := ""
		if x.Ratio > 0 {
			ratio = fmt.Sprintf("%.1fx", x.Ratio)
		}
		metS := ""
		if x.Met != nil {
			metS = "no"
			if *x.Met {
				metS = "**yes**"
			}
		}
		fmt.Fprintf(w, "| %d | %s | %s | %s | %s | %s | %s |\n", x.Workload, name, fmtStat(x.IB, x.Unit), fmtStat(x.LG, x.Unit),
			ratio, x.Target, metS)
	}
	fmt.Fprintln(w, "\nratio: how many times better imgbake is (libguestfs ÷ imgbake for times and memory, imgbake ÷ libguestfs for throughput).")
	if len(res.Failures) > 0 {
		fmt.Fprintf(w, "\n%d failed runs are excluded (see the JSON).\n", len(res.Failures))
	}
}

// addAnsible adds workload 8: the play with one session (with and without
// the module host) vs a boot per task. All variants are imgbake, so they
// are rows of the imgbake column and their quotients rows of their own
// (per repetition, then the median).
func addAnsible(a *an, add func(metric)) {
	play, noHost, perTask := a.get(toolIB, variantPlay), a.get(toolIB, variantPlayNoHost), a.get(toolIB, variantPerTask)
	ssh, chroot := a.get(toolIB, variantSSH), a.get(toolIB, variantChroot)
	tasks := 0
	for _, r := range append(append(append(append(play, noHost...), perTask...), ssh...), chroot...) {
		tasks = max(tasks, r.Tasks)
	}
	perTaskS := func(r *run) (float64, bool) { return r.WallMS / 1000 / float64(max(r.Tasks, 1)), r.Tasks > 0 }
	bootS := func(r *run) (float64, bool) { ms, ok := r.Timings["boot"]; return ms / 1000, ok }
	add(metric{Workload: 8, Name: fmt.Sprintf("Ansible play (%d tasks) through the imgbake.disk plugin: one session with the module host", tasks), Unit: "s",
		IB: summarize(valsOf(play, wallS))})
	perTaskPlay := metric{Workload: 8, Name: "the same, per task", Unit: "s", Detail: true, IB: summarize(valsOf(play, perTaskS)), Target: "≤ 0.5 s"}
	if perTaskPlay.IB != nil {
		ok := perTaskPlay.IB.Median <= 0.5
		perTaskPlay.Met = &ok
	}
	add(perTaskPlay)
	add(metric{Workload: 8, Name: "one session without the module host (ansible_imgbake_module_host=false)", Unit: "s",
		IB: summarize(valsOf(noHost, wallS))})
	add(metric{Workload: 8, Name: "the same, per task", Unit: "s", Detail: true, IB: summarize(valsOf(noHost, perTaskS))})
	add(metric{Workload: 8, Name: "the same play, a fresh appliance per task (ansible_imgbake_per_task)", Unit: "s",
		IB: summarize(valsOf(perTask, wallS))})
	add(metric{Workload: 8, Name: "the same, per task", Unit: "s", Detail: true, IB: summarize(valsOf(perTask, perTaskS))})
	add(metric{Workload: 8, Name: "not imgbake: the same play over ssh to the bootable image booted under TCG (pipelining; the play alone)", Unit: "s",
		IB: summarize(valsOf(ssh, wallS))})
	add(metric{Workload: 8, Name: "the same, per task", Unit: "s", Detail: true, IB: summarize(valsOf(ssh, perTaskS))})
	add(metric{Workload: 8, Name: "its boot until ssh login and systemd settled (not in the play's time)", Unit: "s", Detail: true, IB: summarize(valsOf(ssh, bootS))})
	add(metric{Workload: 8, Name: "not imgbake: the same play through community.general.chroot on the loop-mounted image (unsafe; the floor)", Unit: "s",
		IB: summarize(valsOf(chroot, wallS))})
	add(metric{Workload: 8, Name: "the same, per task", Unit: "s", Detail: true, IB: summarize(valsOf(chroot, perTaskS))})
	ratio := a.perRep(toolIB, variantPerTask, variantPlay, func(pt, pl *run) (float64, bool) {
		return pt.WallMS / pl.WallMS, pl.WallMS > 0
	})
	add(metric{Workload: 8, Name: "per-task boots ÷ one session with the module host (the play's wall time)", Unit: "x", Detail: true,
		IB: summarize(ratio)})
	hostRatio := a.perRep(toolIB, variantPlayNoHost, variantPlay, func(nh, pl *run) (float64, bool) {
		return nh.WallMS / pl.WallMS, pl.WallMS > 0
	})
	add(metric{Workload: 8, Name: "without ÷ with the module host (the play's wall time)", Unit: "x", Detail: true,
		IB: summarize(hostRatio)})
	sshRatio := metric{Workload: 8, Name: "booted VM over ssh ÷ one session with the module host (the play's wall time; the boot not counted)", Unit: "x", Detail: true,
		IB: summarize(a.perRep(toolIB, variantSSH, variantPlay, func(s, pl *run) (float64, bool) {
			return s.WallMS / pl.WallMS, pl.WallMS > 0
		})), Target: "> 1x"}
	if sshRatio.IB != nil {
		ok := sshRatio.IB.Median > 1
		sshRatio.Met = &ok
	}
	add(sshRatio)
	add(metric{Workload: 8, Name: "one session with the module host ÷ chroot on the host (how far from the floor)", Unit: "x", Detail: true,
		IB: summarize(a.perRep(toolIB, variantPlay, variantChroot, func(pl, c *run) (float64, bool) {
			return pl.WallMS / c.WallMS, c.WallMS > 0
		}))})
}

// addCache adds workload 10: a re-run with the last step edited, with and
// without the step-layer cache.
func addCache(a *an, add func(metric)) {
	cached, uncached := a.get(toolIB, variantCached), a.get(toolIB, variantUncached)
	if len(cached) == 0 && len(uncached) == 0 {
		return
	}
	add(metric{Workload: 10, Name: fmt.Sprintf("re-run, last of %d steps edited (first: sleep %d s), without the cache", cacheQuickSteps+1, cacheSlowSeconds),
		Unit: "s", IB: summarize(valsOf(uncached, wallS))})
	add(metric{Workload: 10, Name: "the same with `--cache` (10 steps from the layers)", Unit: "s",
		IB: summarize(valsOf(cached, wallS))})
	add(metric{Workload: 10, Name: "first run with `--cache` (taking the layers)", Unit: "s", Detail: true,
		IB: summarize(valsOf(a.get(toolIB, variantCachePrime), wallS))})
	ratio := metric{Workload: 10, Name: "without ÷ with the cache (wall time, per repetition)", Unit: "x",
		IB: summarize(a.perRep(toolIB, variantCached, variantUncached, func(c, u *run) (float64, bool) {
			return u.WallMS / c.WallMS, c.WallMS > 0
		})), Target: "≥ 10x"}
	if ratio.IB != nil {
		ok := ratio.IB.Median >= 10
		ratio.Met = &ok
	}
	add(ratio)
}
