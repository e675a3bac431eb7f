// Command bench runs imgbake and libguestfs side by side on fresh copies of
// the same test image and reports medians, spreads and ratios (issue 6).
//
//	go run ./scripts/bench [-reps 3] [-heavy-reps 1] [-w 1-11] [-tools imgbake,libguestfs]
//	BENCH_QUICK=1 go run ./scripts/bench      # one short pass
//
// Raw figures go to bench/results/<timestamp>.json; the table is printed as
// Markdown. See BENCHMARKS.md.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type config struct {
	Reps        int      `json:"reps"`
	HeavyReps   int      `json:"heavy_reps"`
	Tasks       int      `json:"tasks"`
	Workloads   []int    `json:"workloads"`
	PythonImage string   `json:"python_image,omitempty"`
	BootImage   string   `json:"boot_image,omitempty"`
	PlayOnly    []string `json:"play_variants,omitempty"` // workload 8: only these variants (empty: all)
	Tools       []string `json:"tools"`
	Image       string   `json:"image"`
	Imgbake     string   `json:"imgbake"`
	Quick       bool     `json:"quick"`
	Sample      string   `json:"rss_sample_interval"`
	NoNetwork   bool     `json:"virt_customize_no_network"`

	sample  time.Duration
	timeout time.Duration
	only    map[int]bool
	tools   map[string]bool
	cache   string
	outDir  string
	report  string
	repo    string
	work    string
	verbose bool
	warmup  bool
}

type results struct {
	Started  time.Time   `json:"started"`
	Finished time.Time   `json:"finished"`
	Machine  machine     `json:"machine"`
	Config   config      `json:"config"`
	Payload  payloadInfo `json:"payload,omitempty"`
	Runs     []*run      `json:"runs"`
	Metrics  []metric    `json:"metrics"`
	Failures []string    `json:"failures,omitempty"`
}

type bench struct {
	cfg         config
	res         *results
	imgbake     string // frozen copy of the binary under test
	payload     payloadInfo
	appDir      string
	memo        map[string]*run
	playDir     string      // workload 8: the playbook's directory
	collections string      // workload 8: ANSIBLE_COLLECTIONS_PATH
	booted      *bootedBase // workload 8: the bootable image with python3 and a key, prepared once per run
	bootedErr   error
	seq         int
	ctx         context.Context
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench %s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func main() {
	cfg, err := parseFlags()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	if cfg.report != "" {
		if err := reprint(cfg.report); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		killCurrent()
	}()
	code := runBench(ctx, cfg)
	os.Exit(code)
}

func parseFlags() (config, error) {
	home, _ := os.UserHomeDir()
	cacheBase := os.Getenv("XDG_CACHE_HOME")
	if cacheBase == "" {
		cacheBase = filepath.Join(home, ".cache")
	}
	imgDir := os.Getenv("IMGBAKE_TESTIMAGES_DIR")
	if imgDir == "" {
		imgDir = filepath.Join(cacheBase, "imgbake", "testimages")
	}
	var c config
	var w, tools, plays string
	flag.IntVar(&c.Reps, "reps", 3, "repetitions of the cheap workloads (1-4; 7 runs once)")
	flag.IntVar(&c.HeavyReps, "heavy-reps", 1, "repetitions of the expensive workloads 5 (copy-in), 6 (20 launches) and 8 (Ansible plays)")
	flag.IntVar(&c.Tasks, "tasks", 20, "tasks in workload 6")
	flag.StringVar(&w, "w", "1-11", "workloads to run: a list and/or ranges, e.g. 1,2,5 or 1-4")
	flag.StringVar(&tools, "tools", toolIB+","+toolLG, "tools to measure")
	flag.StringVar(&c.Image, "image", filepath.Join(imgDir, "debian-gpt.qcow2"), "the test image (copied for every run, never modified)")
	flag.StringVar(&c.PythonImage, "python-image", filepath.Join(imgDir, "debian-python.raw"), "workload 8: the test image with python3 for the Ansible play")
	flag.StringVar(&c.BootImage, "boot-image", filepath.Join(imgDir, "debian-boot.qcow2"), "workload 8: the bootable test image, booted under TCG for the play over ssh")
	flag.StringVar(&plays, "plays", "", "workload 8: only these variants, comma-separated (default: all; "+strings.Join(playVariants, ", ")+")")
	flag.StringVar(&c.repo, "repo", ".", "workload 8: the imgbake checkout (Ansible collection and playbook)")
	flag.StringVar(&c.Imgbake, "imgbake", "bin/imgbake", "the imgbake binary (copied first, so a rebuild during the run changes nothing)")
	flag.StringVar(&c.outDir, "out", "bench/results", "directory for the JSON results")
	flag.StringVar(&c.cache, "cache", filepath.Join(cacheBase, "imgbake", "bench"), "cache for the generated copy-in payload")
	flag.StringVar(&c.work, "work", "", "work directory for image copies (default: a new temporary directory)")
	flag.DurationVar(&c.sample, "sample", 100*time.Millisecond, "RSS sampling interval of the measured process tree (0: off)")
	flag.DurationVar(&c.timeout, "timeout", 30*time.Minute, "limit for one measured command")
	flag.BoolVar(&c.NoNetwork, "vc-no-network", true, "pass --no-network to virt-customize (no workload needs the network; imgbake has none)")
	flag.BoolVar(&c.warmup, "warmup", true, "one untimed run of each tool first, so both appliances are cached")
	flag.BoolVar(&c.verbose, "v", false, "print every measured command's output")
	flag.StringVar(&c.report, "report", "", "measure nothing: print the table of a saved results `FILE` again (with this version's analysis)")
	flag.Parse()
	if flag.NArg() != 0 {
		return c, fmt.Errorf("unexpected arguments %q", flag.Args())
	}
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if q := os.Getenv("BENCH_QUICK"); q != "" && q != "0" {
		c.Quick = true
		if !set["reps"] {
			c.Reps = 1
		}
		if !set["heavy-reps"] {
			c.HeavyReps = 1
		}
		if !set["tasks"] {
			c.Tasks = 5
		}
	}
	if c.Reps < 1 || c.HeavyReps < 0 || c.Tasks < 1 {
		return c, errors.New("-reps and -tasks must be at least 1, -heavy-reps at least 0")
	}
	var err error
	if c.Workloads, err = parseList(w); err != nil {
		return c, err
	}
	c.only = map[int]bool{}
	for _, n := range c.Workloads {
		if n < 1 || n > 11 {
			return c, fmt.Errorf("-w: no workload %d (1-11)", n)
		}
		c.only[n] = true
	}
	c.tools = map[string]bool{}
	for _, t := range strings.Split(tools, ",") {
		t = strings.TrimSpace(t)
		if t != toolIB && t != toolLG {
			return c, fmt.Errorf("-tools: unknown tool %q (imgbake, libguestfs)", t)
		}
		c.tools[t] = true
		c.Tools = append(c.Tools, t)
	}
	for _, v := range strings.Split(plays, ",") {
		if v = strings.TrimSpace(v); v == "" {
			continue
		}
		if !slices.Contains(playVariants, v) {
			return c, fmt.Errorf("-plays: unknown variant %q (%s)", v, strings.Join(playVariants, ", "))
		}
		c.PlayOnly = append(c.PlayOnly, v)
	}
	c.Sample = c.sample.String()
	return c, nil
}

// parseList reads "1,2,5-7".
func parseList(s string) ([]int, error) {
	seen := map[int]bool{}
	var out []int
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return nil, fmt.Errorf("bad workload list %q", s)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, fmt.Errorf("bad workload range %q", part)
			}
		}
		for i := a; i <= b; i++ {
			if !seen[i] {
				seen[i] = true
				out = append(out, i)
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no workloads in %q", s)
	}
	sort.Ints(out)
	return out, nil
}

func runBench(ctx context.Context, cfg config) int {
	b := &bench{cfg: cfg, memo: map[string]*run{}, ctx: ctx,
		res: &results{Started: time.Now().UTC(), Config: cfg}}
	if err := b.setup(); err != nil {
		logf("setup: %v", err)
		return 1
	}
	if cfg.work == "" {
		defer os.RemoveAll(b.cfg.work)
	}
	logf("machine: %d cores, %s, %s, host kernel %s; load %.2f", b.res.Machine.Cores, b.res.Machine.Accel,
		b.res.Machine.QEMU, b.res.Machine.HostKernel, loadavg1())
	logf("plan: workloads %v, reps %d (heavy %d), %d tasks, tools %v", cfg.Workloads, cfg.Reps, cfg.HeavyReps, cfg.Tasks, cfg.Tools)

	if cfg.warmup {
		b.warmup()
	}
	for rep := 1; rep <= cfg.Reps && ctx.Err() == nil; rep++ {
		b.runRep(rep)
	}
	if ctx.Err() != nil {
		b.res.Failures = append(b.res.Failures, "interrupted: partial results")
	}
	b.res.Finished = time.Now().UTC()
	b.res.Machine.LoadEnd = loadavg1()
	b.res.Metrics = analyze(b.res, b.payload, cfg)
	printTable(os.Stdout, b.res)
	path, err := b.save()
	if err != nil {
		logf("saving results: %v", err)
		return 1
	}
	logf("raw figures: %s", path)
	if len(b.res.Failures) > 0 {
		logf("%d failures:", len(b.res.Failures))
		for _, f := range b.res.Failures {
			logf("  %s", strings.SplitN(f, "\n", 2)[0])
		}
		return 1
	}
	return 0
}

// reprint analyzes the raw runs of a saved results file again.
func reprint(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var res results
	if err := json.Unmarshal(data, &res); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	cfg := res.Config
	cfg.sample, _ = time.ParseDuration(cfg.Sample)
	res.Metrics = analyze(&res, res.Payload, cfg)
	printTable(os.Stdout, &res)
	return nil
}

func (b *bench) setup() error {
	if _, err := os.Stat(b.cfg.Image); err != nil {
		return fmt.Errorf("test image: %w (build it: bash testimages/build.sh debian-gpt.qcow2)", err)
	}
	if b.cfg.work == "" {
		d, err := os.MkdirTemp("", "imgbake-bench-")
		if err != nil {
			return err
		}
		b.cfg.work = d
	} else if err := os.MkdirAll(b.cfg.work, 0o755); err != nil {
		return err
	}
	if b.cfg.tools[toolIB] {
		src, err := exec.LookPath(b.cfg.Imgbake)
		if err != nil {
			return fmt.Errorf("imgbake binary: %w (make build)", err)
		}
		b.imgbake = filepath.Join(b.cfg.work, "imgbake")
		if err := runQuiet("cp", src, b.imgbake); err != nil {
			return err
		}
	}
	if b.cfg.tools[toolLG] {
		for _, t := range []string{"virt-customize", "guestfish", "virt-copy-in", "virt-sparsify"} {
			if _, err := exec.LookPath(t); err != nil {
				return fmt.Errorf("%s not found: install libguestfs-tools (bash scripts/install-deps.sh --bench)", t)
			}
		}
	}
	b.appDir = filepath.Join(b.cfg.work, "appfiles")
	if err := smallTree(b.appDir); err != nil {
		return err
	}
	if b.cfg.only[5] {
		p, err := ensurePayload(b.cfg.cache)
		if err != nil {
			return fmt.Errorf("payload: %w", err)
		}
		b.payload = p
		b.res.Payload = p
	}
	if b.cfg.only[8] && b.cfg.tools[toolIB] {
		if err := b.ansibleSetup(); err != nil {
			return err
		}
	}
	b.res.Machine = gatherMachine(b.imgbake, b.cfg.Image)
	return nil
}

// warmup runs each tool once untimed: imgbake builds/caches its appliance,
// libguestfs its supermin appliance, and both fill the page cache.
func (b *bench) warmup() {
	logf("warm-up (untimed)")
	if b.cfg.tools[toolIB] {
		r := &run{Workload: 0, Tool: toolIB, Variant: "warmup"}
		img, cleanup, err := b.imageCopy()
		if err == nil {
			err = b.exec(r, b.ibRecipe(runsRecipe(1))(img))
			cleanup()
		}
		if err != nil {
			b.fail(r, err)
		}
	}
	if b.cfg.tools[toolLG] {
		r := &run{Workload: 0, Tool: toolLG, Variant: "warmup"}
		img, cleanup, err := b.imageCopy()
		if err == nil {
			err = b.exec(r, []string{"guestfish", "-a", img, "-i", "command", "true"})
			cleanup()
		}
		if err != nil {
			b.fail(r, err)
		}
	}
}

func (b *bench) runRep(rep int) {
	logf("=== repetition %d/%d", rep, b.cfg.Reps)
	on := b.cfg.only
	heavy := rep <= b.cfg.HeavyReps
	if on[1] || on[2] || on[3] {
		b.pair(rep, 1, "run1", b.ibRecipe(runsRecipe(1)), b.vcArgs(runsArgs(1)))
	}
	if on[1] {
		// The same with the kernel booted instead of the saved appliance
		// restored (imgbake's warm start); ignored by builds without it.
		b.pair(rep, 1, "run1-cold", func(img string) []string {
			return append([]string{"env", "IMGBAKE_COLD=1"}, b.ibRecipe(runsRecipe(1))(img)...)
		}, nil)
	}
	if on[2] {
		b.pair(rep, 2, "run21", b.ibRecipe(runsRecipe(21)), b.vcArgs(runsArgs(21)))
	}
	if on[3] {
		b.pair(rep, 3, "write50", b.ibRecipe(writesRecipe(50)), b.vcArgs(writesArgs(50)))
	}
	if on[4] {
		b.pair(rep, 4, "real20", b.ibRecipe(realRecipe(b.appDir)), b.vcArgs(realArgs(b.appDir)))
	}
	if on[5] && heavy {
		// Baselines: the same boot without the copy, to get net throughput.
		b.pair(rep, 1, "run1", b.ibRecipe(runsRecipe(1)), nil)
		b.pair(rep, 5, "launch", nil, func(img string) []string {
			return []string{"guestfish", "--rw", "-a", img, "-i", "command", "true"}
		})
		b.pair(rep, 5, "copy", b.ibRecipe(copyRecipe(b.payload.Dir)), func(img string) []string {
			return []string{"virt-copy-in", "-a", img, b.payload.Dir, "/opt"}
		})
	}
	if on[6] && heavy {
		b.tasks(rep)
	}
	if on[8] && heavy && b.cfg.tools[toolIB] {
		b.ansible(rep)
	}
	if on[10] && heavy && b.cfg.tools[toolIB] {
		b.layerCache(rep)
	}
	if on[9] && b.cfg.tools[toolIB] {
		b.many(rep)
	}
	if on[11] && heavy {
		b.sparsify(rep)
	}
	if on[7] && rep == 1 {
		memDir := filepath.Join(b.cfg.work, "meminfo")
		_ = os.MkdirAll(memDir, 0o755)
		// libguestfs' RSS is sampled in every run; it needs its own run
		// only when workload 4 did not run.
		var lg argvFunc
		if !on[4] {
			lg = b.vcArgs(realArgs(b.appDir))
		}
		b.pair(rep, 7, "mem", b.ibRecipe(realRecipe(b.appDir, memSteps(memDir)...)), lg)
		if r := b.memo[key(toolIB, "mem", rep)]; r != nil {
			if data, err := os.ReadFile(filepath.Join(memDir, "bench-meminfo")); err == nil {
				r.Meminfo = parseMeminfo(string(data))
			}
		}
	}
}

// argvFunc builds a command line for an image copy.
type argvFunc func(img string) []string

func key(tool, variant string, rep int) string { return fmt.Sprintf("%s/%s/%d", tool, variant, rep) }

// pair measures one variant with both tools, alternating which goes first
// from one repetition to the next. A variant already measured in this
// repetition (a shared baseline) is not measured again.
func (b *bench) pair(rep, workload int, variant string, ib, lg argvFunc) {
	type job struct {
		tool string
		argv argvFunc
	}
	jobs := []job{{toolIB, ib}, {toolLG, lg}}
	if rep%2 == 0 {
		jobs[0], jobs[1] = jobs[1], jobs[0]
	}
	for _, j := range jobs {
		if j.argv == nil || !b.cfg.tools[j.tool] || b.ctx.Err() != nil {
			continue
		}
		k := key(j.tool, variant, rep)
		if b.memo[k] != nil {
			continue
		}
		r := &run{Workload: workload, Tool: j.tool, Variant: variant, Rep: rep}
		img, cleanup, err := b.imageCopy()
		if err == nil {
			err = b.exec(r, j.argv(img))
			cleanup()
		}
		b.record(k, r, err)
	}
}

// tasks is workload 6: the per-task-boot model. One image per tool, tasks
// interleaved; plus one recipe holding all the tasks' steps.
func (b *bench) tasks(rep int) {
	n := b.cfg.Tasks
	b.pair(rep, 6, fmt.Sprintf("recipe%d", n), b.ibRecipe(runsRecipe(n)), nil)
	imgs := map[string]string{}
	for _, t := range []string{toolIB, toolLG} {
		if !b.cfg.tools[t] {
			continue
		}
		img, cleanup, err := b.imageCopy()
		if err != nil {
			b.res.Failures = append(b.res.Failures, err.Error())
			return
		}
		defer cleanup()
		imgs[t] = img
	}
	recipeDir := filepath.Join(b.cfg.work, "tasks")
	_ = os.MkdirAll(recipeDir, 0o755)
	for i := 1; i <= n && b.ctx.Err() == nil; i++ {
		order := []string{toolIB, toolLG}
		if (i+rep)%2 == 1 {
			order[0], order[1] = order[1], order[0]
		}
		for _, t := range order {
			img, ok := imgs[t]
			if !ok {
				continue
			}
			r := &run{Workload: 6, Tool: t, Variant: "task", Rep: rep, Task: i}
			var argv []string
			if t == toolIB {
				rp := filepath.Join(recipeDir, fmt.Sprintf("task%02d.yaml", i))
				if err := os.WriteFile(rp, []byte(taskRecipe(i)), 0o644); err != nil {
					b.record("", r, err)
					continue
				}
				argv = []string{b.imgbake, "run", "--timings", "-a", img, rp}
			} else {
				argv = []string{"guestfish", "-a", img, "-i", "command", "true"}
			}
			b.record(fmt.Sprintf("%s/task%02d/%d", t, i, rep), r, b.exec(r, argv))
		}
	}
}

func (b *bench) record(k string, r *run, err error) {
	b.res.Runs = append(b.res.Runs, r)
	if err != nil {
		b.fail(r, err)
		return
	}
	if r.Tool == toolIB && r.Workload != 8 && r.Workload != 11 { // plays are checked by checkPlay; sparsify runs no steps
		// A successful imgbake run prints one line per step; a recipe that
		// was skipped as already applied would print none.
		if len(r.Steps) == 0 {
			b.fail(r, errors.New("imgbake printed no step results (already applied?)"))
			return
		}
		for _, s := range r.Steps {
			if s.Status != "ok" && s.Status != "changed" && !(s.Status == "cached" && r.Variant == variantCached) {
				b.fail(r, fmt.Errorf("step %d %s", s.Index, s.Status))
				return
			}
		}
	}
	if k != "" {
		b.memo[k] = r
	}
}

func (b *bench) fail(r *run, err error) {
	if r.Err == "" {
		r.Err = err.Error()
	}
	msg := fmt.Sprintf("workload %d %s %s rep %d: %v", r.Workload, r.Tool, r.Variant, r.Rep, err)
	logf("FAILED %s", msg)
	b.res.Failures = append(b.res.Failures, msg)
}

// ibRecipe writes recipe to a file and returns the imgbake command line.
func (b *bench) ibRecipe(recipe string) argvFunc {
	return func(img string) []string {
		return []string{b.imgbake, "run", "--timings", "-a", img, b.recipeFile(recipe)}
	}
}

// recipeFile writes recipe to a new file in the work directory.
func (b *bench) recipeFile(recipe string) string {
	b.seq++
	p := filepath.Join(b.cfg.work, fmt.Sprintf("recipe-%03d.yaml", b.seq))
	if err := os.WriteFile(p, []byte(recipe), 0o644); err != nil {
		logf("writing recipe: %v", err)
	}
	return p
}

func (b *bench) vcArgs(ops []string) argvFunc {
	return func(img string) []string {
		a := []string{"virt-customize", "-a", img}
		if b.cfg.NoNetwork {
			a = append(a, "--no-network")
		}
		return append(a, ops...)
	}
}

func (b *bench) exec(r *run, argv []string) error {
	return b.execWith(r, argv, b.procOpts())
}

// procOpts are the defaults of a measured command.
func (b *bench) procOpts() procOpts {
	o := procOpts{dir: b.cfg.work, timeout: b.cfg.timeout, sample: b.cfg.sample,
		env: []string{"LIBGUESTFS_BACKEND=direct"}}
	if b.res.Machine.LibguestfsForceTCG {
		o.env = append(o.env, "LIBGUESTFS_BACKEND_SETTINGS=force_tcg")
	}
	if b.cfg.verbose {
		o.logLines = func(l string) { fmt.Fprintf(os.Stderr, "    | %s\n", l) }
	}
	return o
}

func (b *bench) execWith(r *run, argv []string, o procOpts) error {
	label := fmt.Sprintf("w%d %-10s %-8s rep %d", r.Workload, r.Tool, r.Variant, r.Rep)
	if r.Task > 0 {
		label += fmt.Sprintf(" task %d", r.Task)
	}
	err := execute(b.ctx, r, argv, o)
	logf("%s  %8.2f s  (load %.1f)", label, r.WallMS/1000, r.LoadBefore)
	return err
}

// imageCopy makes a fresh sparse copy of the test image.
func (b *bench) imageCopy() (string, func(), error) { return b.copyOf(b.cfg.Image) }

// copyOf makes a fresh sparse copy of src in the work directory.
func (b *bench) copyOf(src string) (string, func(), error) {
	b.seq++
	p := filepath.Join(b.cfg.work, fmt.Sprintf("img-%03d%s", b.seq, filepath.Ext(src)))
	if err := copySparse(src, p); err != nil {
		return "", func() {}, err
	}
	return p, func() { os.Remove(p) }, nil
}

func (b *bench) save() (string, error) {
	if err := os.MkdirAll(b.cfg.outDir, 0o755); err != nil {
		return "", err
	}
	name := b.res.Started.Format("20060102T150405Z")
	if b.cfg.Quick {
		name += "-quick"
	}
	final := filepath.Join(b.cfg.outDir, name+".json")
	tmp := final + ".tmp"
	data, err := json.MarshalIndent(b.res, "", " ")
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return "", err
	}
	return final, os.Rename(tmp, final)
}

// machine describes where the figures were measured.
type machine struct {
	Cores          int     `json:"cores"`
	CPU            string  `json:"cpu"`
	MemMiB         int64   `json:"mem_mib"`
	Accel          string  `json:"accel"`
	QEMU           string  `json:"qemu"`
	HostKernel     string  `json:"host_kernel"`
	ApplianceInfo  string  `json:"imgbake_appliance,omitempty"`
	Libguestfs     string  `json:"libguestfs,omitempty"`
	ImgbakeSHA256  string  `json:"imgbake_sha256,omitempty"`
	GitCommit      string  `json:"git_commit,omitempty"`
	ImageSHA256    string  `json:"image_sha256,omitempty"`
	LoadStart      float64 `json:"loadavg1_start"`
	LoadEnd        float64 `json:"loadavg1_end"`
	GoVersion      string  `json:"go"`
	LibguestfsMode string  `json:"libguestfs_backend"`
	// LibguestfsForceTCG: libguestfs runs with force_tcg because KVM is
	// present but imgbake found it unusable.
	LibguestfsForceTCG bool `json:"libguestfs_force_tcg,omitempty"`
}

func gatherMachine(imgbake, image string) machine {
	m := machine{Cores: runtime.NumCPU(), Accel: "tcg", LoadStart: loadavg1(), GoVersion: runtime.Version(),
		LibguestfsMode: "direct"}
	if f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0); err == nil {
		f.Close()
		m.Accel = "kvm"
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		m.MemMiB = parseMeminfo(string(b))["MemTotal"] / 1024
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.HostKernel = strings.TrimSpace(string(b))
	}
	m.QEMU = firstLine(output("qemu-system-x86_64", "--version"))
	m.Libguestfs = firstLine(output("guestfish", "--version"))
	if imgbake != "" {
		m.ApplianceInfo = strings.TrimSpace(output(imgbake, "appliance", "info"))
		m.ImgbakeSHA256 = fileSHA(imgbake)
	}
	// The accelerator imgbake found usable (it checks that a kernel boots
	// under KVM); libguestfs only checks that /dev/kvm opens, so where KVM
	// is there but broken it is told to use TCG too, and both tools run
	// under the same accelerator.
	for _, l := range strings.Split(m.ApplianceInfo, "\n") {
		if v, ok := strings.CutPrefix(l, "accel:"); ok {
			if f := strings.Fields(v); len(f) > 0 && f[0] == "tcg" && m.Accel == "kvm" {
				m.Accel, m.LibguestfsForceTCG = "tcg", true
				m.LibguestfsMode = "direct, force_tcg"
			}
		}
	}
	m.GitCommit = strings.TrimSpace(output("git", "rev-parse", "--short", "HEAD"))
	if m.GitCommit != "" && strings.TrimSpace(output("git", "status", "--porcelain", "--untracked-files=no")) != "" {
		m.GitCommit += "+dirty"
	}
	m.ImageSHA256 = fileSHA(image)
	return m
}

func fileSHA(p string) string {
	f, err := os.Open(p)
	if err != nil {
		return ""
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return ""
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

func output(name string, args ...string) string {
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		return ""
	}
	return string(out)
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}

func runQuiet(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
