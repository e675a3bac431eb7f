package main

import (
	"bufio"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// stepLine is one step result line of `imgbake run` (or, prefixed with
// its image, of `imgbake bake`) as it arrived on stdout.
type stepLine struct {
	Image  string  `json:"image,omitempty"` // bake: the line's "[IMAGE] " prefix
	Index  int     `json:"index"`
	Total  int     `json:"total"`
	Title  string  `json:"title"`
	Status string  `json:"status"`
	DurMS  float64 `json:"duration_ms"` // as printed by imgbake
	AtMS   float64 `json:"at_ms"`       // arrival on the driver's clock, since process start
}

// progressLine is one `[  12.3] Message` line of virt-customize.
type progressLine struct {
	OwnSec float64 `json:"own_sec"` // virt-customize's own clock
	AtMS   float64 `json:"at_ms"`   // arrival on the driver's clock
	Msg    string  `json:"msg"`
}

var (
	stepRe     = regexp.MustCompile(`^(?:\[([^\]]+)\] )?\[\s*(\d+)/(\d+)\]\s+(.*?)\s+(ok|changed|skipped|cached|failed \(ignored\)|failed|interrupted)\s+(\d+(?:\.\d+)?(?:ms|s))\b`)
	timingRe   = regexp.MustCompile(`^\s+(\S.*?)\s+(-?\d+(?:\.\d+)?) ms`)
	progressRe = regexp.MustCompile(`^\[\s*(\d+(?:\.\d+)?)\]\s+(.*)$`)
)

// parseStepLine recognises an imgbake step result line.
func parseStepLine(s string, atMS float64) (stepLine, bool) {
	m := stepRe.FindStringSubmatch(s)
	if m == nil {
		return stepLine{}, false
	}
	idx, _ := strconv.Atoi(m[2])
	tot, _ := strconv.Atoi(m[3])
	d, err := time.ParseDuration(m[6])
	if err != nil {
		return stepLine{}, false
	}
	return stepLine{Image: m[1], Index: idx, Total: tot, Title: m[4], Status: m[5], DurMS: msOf(d), AtMS: atMS}, true
}

// parseTimings reads the `--timings` block imgbake prints on stderr:
// "timings:" then "  label   123 ms  (note)" lines.
func parseTimings(stderr string) (map[string]float64, []string) {
	out := map[string]float64{}
	var order []string
	in := false
	sc := bufio.NewScanner(strings.NewReader(stderr))
	for sc.Scan() {
		l := sc.Text()
		if strings.TrimSpace(l) == "timings:" {
			in = true
			continue
		}
		if !in {
			continue
		}
		m := timingRe.FindStringSubmatch(l)
		if m == nil {
			in = false
			continue
		}
		v, err := strconv.ParseFloat(m[2], 64)
		if err == nil {
			if _, dup := out[m[1]]; !dup {
				order = append(order, m[1])
			}
			out[m[1]] = v
		}
	}
	return out, order
}

// parseProgress recognises a virt-customize progress line.
func parseProgress(s string, atMS float64) (progressLine, bool) {
	m := progressRe.FindStringSubmatch(strings.TrimRight(s, "\r"))
	if m == nil {
		return progressLine{}, false
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return progressLine{}, false
	}
	return progressLine{OwnSec: v, AtMS: atMS, Msg: m[2]}, true
}

// parseMeminfo returns /proc/meminfo fields in kB.
func parseMeminfo(s string) map[string]int64 {
	out := map[string]int64{}
	for _, l := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err == nil {
			out[strings.TrimSpace(k)] = n
		}
	}
	return out
}

// qemuMemArg returns the -m value of a qemu command line, in MiB.
func qemuMemArg(args []string) int {
	for i, a := range args {
		if a != "-m" || i+1 >= len(args) {
			continue
		}
		v := args[i+1]
		// Forms: 512, 512M, 1G, size=512M,slots=...
		if j := strings.Index(v, "size="); j >= 0 {
			v = v[j+5:]
		}
		if j := strings.IndexByte(v, ','); j >= 0 {
			v = v[:j]
		}
		mult := 1.0
		switch {
		case strings.HasSuffix(v, "G"), strings.HasSuffix(v, "g"):
			mult, v = 1024, v[:len(v)-1]
		case strings.HasSuffix(v, "M"), strings.HasSuffix(v, "m"):
			v = v[:len(v)-1]
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0
		}
		return int(f * mult)
	}
	return 0
}

func msOf(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
