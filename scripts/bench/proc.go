package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// procPeak is the largest resident set a process of the measured tree
// reached, as sampled from /proc/PID/status (VmHWM is the kernel's own
// high-water mark, so a sample taken shortly before exit is exact up to then).
type procPeak struct {
	Pid    int    `json:"pid"`
	Name   string `json:"name"`
	HWMkB  int64  `json:"vm_hwm_kb"`
	MemArg int    `json:"qemu_m_mib,omitempty"` // qemu's -m, when the process is qemu
}

// run is one measured process execution, stored raw in the JSON.
type run struct {
	Workload    int                `json:"workload"`
	Tool        string             `json:"tool"` // imgbake | libguestfs
	Variant     string             `json:"variant"`
	Rep         int                `json:"rep"`
	Task        int                `json:"task,omitempty"`
	Tasks       int                `json:"play_tasks,omitempty"` // workload 8: tasks the play ran
	Cmd         []string           `json:"cmd"`
	Started     time.Time          `json:"started"`
	WallMS      float64            `json:"wall_ms"`
	ExitCode    int                `json:"exit_code"`
	Steps       []stepLine         `json:"steps,omitempty"`
	Timings     map[string]float64 `json:"timings_ms,omitempty"`
	TimingKeys  []string           `json:"timings_order,omitempty"` // as printed
	Progress    []progressLine     `json:"progress,omitempty"`
	MaxRSSkB    int64              `json:"rusage_maxrss_kb"` // wait4: max over the process and its reaped descendants
	UserCPUMS   float64            `json:"user_cpu_ms"`
	SysCPUMS    float64            `json:"sys_cpu_ms"`
	Peaks       []procPeak         `json:"peaks,omitempty"`
	TreeRSSkB   int64              `json:"tree_peak_rss_kb,omitempty"` // largest sum of VmRSS over the tree at one sample (procOpts.tree)
	TreePSSkB   int64              `json:"tree_peak_pss_kb,omitempty"` // the same with Pss: shared pages counted once
	Images      int                `json:"images,omitempty"`           // workload 9: images baked by the command
	ImagesOK    int                `json:"images_ok,omitempty"`        // workload 9: of them, reported ok
	OutputBytes int64              `json:"output_bytes,omitempty"`     // workload 11: the output image's allocated size
	LoadBefore  float64            `json:"loadavg1_before"`
	LoadAfter   float64            `json:"loadavg1_after"`
	Meminfo     map[string]int64   `json:"guest_meminfo_kb,omitempty"`
	Output      string             `json:"output_tail,omitempty"` // only when the command failed
	Err         string             `json:"error,omitempty"`
}

// procOpts controls one execution.
type procOpts struct {
	env      []string
	dir      string
	timeout  time.Duration
	sample   time.Duration // 0: no RSS sampling
	tree     bool          // also the whole tree's RSS and PSS at each sample (workload 9)
	verbose  bool
	okCodes  []int
	logLines func(string)
}

// current is the process group of the running measurement, for Ctrl-C.
var (
	currentMu  sync.Mutex
	currentPgr int
)

func killCurrent() {
	currentMu.Lock()
	defer currentMu.Unlock()
	if currentPgr > 0 {
		_ = syscall.Kill(-currentPgr, syscall.SIGKILL)
	}
}

// execute runs argv, timestamps every stdout line as it arrives and records
// wall time, rusage and (optionally) the RSS peaks of the process tree.
func execute(ctx context.Context, r *run, argv []string, o procOpts) error {
	if o.timeout == 0 {
		o.timeout = 30 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), o.env...)
	cmd.Dir = o.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	var stderr bytes.Buffer
	var tail tailBuf
	cmd.Stderr = io.MultiWriter(&stderr, &tail)
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd.Stdout = pw
	r.Cmd = argv
	r.LoadBefore = loadavg1()
	r.Started = time.Now().UTC()
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		r.Err = err.Error()
		return err
	}
	pw.Close()
	currentMu.Lock()
	currentPgr = cmd.Process.Pid
	currentMu.Unlock()

	var smp *sampler
	if o.sample > 0 {
		smp = startSampler(cmd.Process.Pid, o.sample, o.tree)
	}
	lines := make(chan struct{})
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			at := msOf(time.Since(t0))
			l := sc.Text()
			tail.Write([]byte(l + "\n"))
			if o.logLines != nil {
				o.logLines(l)
			}
			if s, ok := parseStepLine(l, at); ok {
				r.Steps = append(r.Steps, s)
			} else if p, ok := parseProgress(l, at); ok && r.Tool == toolLG {
				r.Progress = append(r.Progress, p)
			}
		}
		pr.Close()
	}()
	waitDone := make(chan error, 1)
	go func() { waitDone <- cmd.Wait() }()
	var werr error
	select {
	case werr = <-waitDone:
	case <-ctx.Done():
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		werr = <-waitDone
		if werr == nil {
			werr = ctx.Err()
		} else {
			werr = fmt.Errorf("%w (%v)", ctx.Err(), werr)
		}
	}
	wall := time.Since(t0)
	<-lines
	currentMu.Lock()
	currentPgr = 0
	currentMu.Unlock()
	// Descendants that outlived the command (none expected) go with it.
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	if smp != nil {
		r.Peaks = smp.stop()
		r.TreeRSSkB, r.TreePSSkB = smp.treeRSS, smp.treePSS
	}
	r.WallMS = msOf(wall)
	r.LoadAfter = loadavg1()
	if ps := cmd.ProcessState; ps != nil {
		r.ExitCode = ps.ExitCode()
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			r.MaxRSSkB = ru.Maxrss
			r.UserCPUMS = float64(ru.Utime.Sec)*1000 + float64(ru.Utime.Usec)/1000
			r.SysCPUMS = float64(ru.Stime.Sec)*1000 + float64(ru.Stime.Usec)/1000
		}
	}
	r.Timings, r.TimingKeys = parseTimings(stderr.String())
	if len(r.Timings) == 0 {
		r.Timings = nil
	}
	ok := werr == nil
	if !ok {
		var ee *exec.ExitError
		if asExit(werr, &ee) {
			for _, c := range o.okCodes {
				if ee.ExitCode() == c {
					ok = true
				}
			}
		}
	}
	if !ok {
		r.Err = werr.Error()
		r.Output = tail.String()
		return fmt.Errorf("%s: %v\n%s", strings.Join(shortArgv(argv), " "), werr, indent(tail.String()))
	}
	return nil
}

func asExit(err error, target **exec.ExitError) bool {
	ee, ok := err.(*exec.ExitError)
	if ok {
		*target = ee
	}
	return ok
}

func shortArgv(argv []string) []string {
	out := make([]string, 0, len(argv))
	for _, a := range argv {
		if len(a) > 60 {
			a = a[:57] + "..."
		}
		out = append(out, a)
	}
	if len(out) > 12 {
		out = append(out[:12], fmt.Sprintf("... (%d more)", len(out)-12))
	}
	return out
}

func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return ""
	}
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}

// tailBuf keeps the last 4 KiB written to it.
type tailBuf struct {
	mu sync.Mutex
	b  []byte
}

func (t *tailBuf) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > 4096 {
		t.b = append([]byte(nil), t.b[len(t.b)-4096:]...)
	}
	return len(p), nil
}

func (t *tailBuf) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// sampler follows the process tree under root and keeps each process's
// VmHWM. Rusage from wait4 cannot separate imgbake from its qemu child
// (Linux reports the maximum over the whole reaped tree), this can.
type sampler struct {
	root  int
	done  chan struct{}
	wg    sync.WaitGroup
	mu    sync.Mutex
	peaks map[int]*procPeak
	// tree: the largest sums over the tree at one sample of VmRSS and of
	// Pss (smaps_rollup), when asked for.
	tree             bool
	treeRSS, treePSS int64
}

func startSampler(root int, every time.Duration, tree bool) *sampler {
	s := &sampler{root: root, done: make(chan struct{}), peaks: map[int]*procPeak{}, tree: tree}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			s.sample()
			select {
			case <-s.done:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *sampler) stop() []procPeak {
	close(s.done)
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []procPeak
	for _, p := range s.peaks {
		out = append(out, *p)
	}
	return out
}

func (s *sampler) sample() {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	parent := map[int]int{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		parent[pid] = ppid
	}
	inTree := func(pid int) bool {
		for i := 0; i < 64 && pid > 1; i++ {
			if pid == s.root {
				return true
			}
			pid = parent[pid]
		}
		return false
	}
	var rssSum, pssSum int64
	for pid := range parent {
		if !inTree(pid) {
			continue
		}
		name, hwm, rss := readStatus(pid)
		if name == "" {
			continue
		}
		if s.tree {
			rssSum += rss
			pssSum += readPss(pid)
		}
		s.mu.Lock()
		p := s.peaks[pid]
		if p == nil {
			p = &procPeak{Pid: pid}
			s.peaks[pid] = p
		}
		p.Name = name // the name changes from the fork's to the exec'd program's
		if p.MemArg == 0 && strings.HasPrefix(name, "qemu-system") {
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil {
				p.MemArg = qemuMemArg(strings.Split(strings.TrimRight(string(b), "\x00"), "\x00"))
			}
		}
		if hwm > p.HWMkB {
			p.HWMkB = hwm
		}
		s.mu.Unlock()
	}
	s.mu.Lock()
	s.treeRSS, s.treePSS = max(s.treeRSS, rssSum), max(s.treePSS, pssSum)
	s.mu.Unlock()
}

// readPss is the process's proportional set size in kB (smaps_rollup):
// pages shared with other processes count by their share.
func readPss(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Pss:"); ok {
			if f := strings.Fields(v); len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

func readStatus(pid int) (name string, hwmKB, rssKB int64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "", 0, 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		switch k {
		case "Name":
			name = strings.TrimSpace(v)
		case "VmHWM", "VmRSS":
			f := strings.Fields(v)
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				if k == "VmHWM" {
					hwmKB = n
				} else {
					rssKB = n
				}
			}
		}
	}
	return name, hwmKB, rssKB
}

func loadavg1() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}
