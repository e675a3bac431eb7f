package main

import (
	"strings"
	"testing"
)

func TestParseStepLine(t *testing.T) {
	for _, tc := range []struct {
		line   string
		ok     bool
		idx    int
		status string
		dur    float64
	}{
		{"[1/1] run: true                                                    changed  184ms", true, 1, "changed", 184},
		{"[ 3/21] write: /root/x                                  ok       1.25s  (12 B)", true, 3, "ok", 1250},
		{"[2/2] run: false                                   failed (ignored) 40ms", true, 2, "failed (ignored)", 40},
		{"one: 0 ok, 1 changed, 0 failed, 0 ignored in 27.988s", false, 0, "", 0},
		{"[   0.0] Examining the guest ...", false, 0, "", 0},
		{"[img-004.qcow2] [ 7/20] run: useradd x                     changed  1.10s", true, 7, "changed", 1100},
		{"[img-004.qcow2] bench: 0 ok, 20 changed, 0 skipped, 0 failed, 0 ignored in 9.1s", false, 0, "", 0},
	} {
		s, ok := parseStepLine(tc.line, 5)
		if ok != tc.ok {
			t.Errorf("%q: ok=%v, want %v", tc.line, ok, tc.ok)
			continue
		}
		if ok && strings.HasPrefix(tc.line, "[img-") && s.Image != "img-004.qcow2" {
			t.Errorf("%q: image %q", tc.line, s.Image)
		}
		if ok && (s.Index != tc.idx || s.Status != tc.status || s.DurMS != tc.dur || s.AtMS != 5) {
			t.Errorf("%q: got %+v", tc.line, s)
		}
	}
}

func TestParseTimings(t *testing.T) {
	stderr := `something else
timings:
  appliance build/cache         55 ms
  guest kernel → agent       10890 ms  (guest uptime at ready)
  total                      27988 ms
imgbake: trailing message 12 ms
`
	got, order := parseTimings(stderr)
	if len(order) != 3 || order[1] != "guest kernel → agent" {
		t.Fatalf("order %v", order)
	}
	want := map[string]float64{"appliance build/cache": 55, "guest kernel → agent": 10890, "total": 27988}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}

func TestParseProgress(t *testing.T) {
	p, ok := parseProgress("[  52.3] Running: true", 100)
	if !ok || p.OwnSec != 52.3 || p.Msg != "Running: true" || p.AtMS != 100 {
		t.Fatalf("got %+v %v", p, ok)
	}
	if _, ok := parseProgress("virt-customize: warning: random seed could not be set", 0); ok {
		t.Fatal("a warning is not a progress line")
	}
}

func TestQemuMemArg(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"qemu", "-m", "512", "-smp", "1"}, 512},
		{[]string{"qemu", "-m", "1280M"}, 1280},
		{[]string{"qemu", "-m", "size=2G,slots=2"}, 2048},
		{[]string{"qemu", "-smp", "1"}, 0},
	} {
		if got := qemuMemArg(tc.args); got != tc.want {
			t.Errorf("%v: %d, want %d", tc.args, got, tc.want)
		}
	}
}

func TestSummarize(t *testing.T) {
	s := summarize([]float64{3, 1, 2, 10})
	if s.Median != 2.5 || s.Min != 1 || s.Max != 10 || s.N != 4 {
		t.Fatalf("got %+v", s)
	}
	if summarize(nil) != nil {
		t.Fatal("no values: no stat")
	}
	if s := summarize([]float64{4, 9, 1}); s.Median != 4 {
		t.Fatalf("odd median %v", s.Median)
	}
}

func TestParseList(t *testing.T) {
	got, err := parseList("5,1-3,2")
	if err != nil || len(got) != 4 || got[0] != 1 || got[3] != 5 {
		t.Fatalf("got %v %v", got, err)
	}
	for _, bad := range []string{"", "x", "3-1"} {
		if _, err := parseList(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// The recipes must stay in step with virt-customize's options: the same
// number of operations on both sides.
func TestRealisticRecipeHasTwentySteps(t *testing.T) {
	steps := realSteps("/tmp/app")
	if len(steps) != 20 {
		t.Fatalf("%d steps", len(steps))
	}
	ops := 0
	for _, a := range realArgs("/tmp/app") {
		if strings.HasPrefix(a, "--") {
			ops++
		}
	}
	if ops != 20 {
		t.Fatalf("%d virt-customize operations", ops)
	}
	if n := strings.Count(realRecipe("/tmp/app"), "\n  - "); n != 20 {
		t.Fatalf("recipe has %d steps", n)
	}
	if n := strings.Count(writesRecipe(50), "\n  - "); n != 51 {
		t.Fatalf("writes recipe has %d steps", n)
	}
}

func TestManyWorkload(t *testing.T) {
	out := "[a.qcow2] [1/1] run: true   changed  5ms\na.qcow2: ok in 1.2s — 0 ok, 1 changed, 0 skipped, 0 failed, 0 ignored\n" +
		"b.qcow2: failed (exit 3) in 0.2s — no OS\nc.qcow2: ok in 1s — already applied, nothing changed\n"
	if n := countOK(out); n != 2 {
		t.Errorf("countOK = %d, want 2", n)
	}
	r := &run{Steps: []stepLine{{Image: "img-1.qcow2", Index: 1}, {Image: "img-2.qcow2", Index: 1}}, ImagesOK: 2}
	if err := checkMany(r, []string{"/w/img-1.qcow2", "/w/img-2.qcow2"}, 1); err != nil {
		t.Error(err)
	}
	if err := checkMany(r, []string{"/w/img-1.qcow2", "/w/img-2.qcow2"}, 2); err == nil {
		t.Error("missing step lines accepted")
	}

	res := &results{Runs: []*run{
		{Workload: 9, Tool: toolIB, Variant: variantManyOne, Rep: 1, WallMS: 2000, TreeRSSkB: 250 << 10},
		{Workload: 9, Tool: toolIB, Variant: variantMany, Rep: 1, WallMS: 4000, Images: 4, ImagesOK: 4, TreeRSSkB: 900 << 10, TreePSSkB: 800 << 10},
		{Workload: 9, Tool: toolIB, Variant: variantManyOne, Rep: 2, WallMS: 1000},
		{Workload: 9, Tool: toolIB, Variant: variantMany, Rep: 2, WallMS: 9000, Images: 4, ImagesOK: 3, Err: "exit 1"},
	}}
	rows := map[string]metric{}
	for _, m := range analyze(res, payloadInfo{}, config{}) {
		if m.Workload == 9 {
			rows[m.Unit+" "+m.Name[:10]] = m
		}
	}
	var ratio, fails, rss *metric
	for _, m := range rows {
		switch {
		case m.Unit == "x":
			ratio = &m
		case m.Unit == "images":
			fails = &m
		case strings.HasPrefix(m.Name, "peak host RSS"):
			rss = &m
		}
	}
	if ratio == nil || ratio.IB.N != 1 || ratio.IB.Median != 2 || ratio.Met == nil || !*ratio.Met {
		t.Errorf("ratio row: %+v", ratio)
	}
	if fails == nil || fails.IB.Max != 1 || fails.Met == nil || *fails.Met {
		t.Errorf("failures row (a failed run counts): %+v", fails)
	}
	if rss == nil || rss.IB.Median != 900 {
		t.Errorf("RSS row: %+v", rss)
	}
}
