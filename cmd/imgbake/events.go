package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/recipes"
)

// eventSink reports a run's progress: lines for people, or with --json
// one JSON object per line for CI.
type eventSink interface {
	runStart(rec *recipes.Recipe, facts recipes.Facts)
	stepStart(st recipes.Step)
	stepResult(st recipes.Step, o outcome)
	runEnd(rec *recipes.Recipe, sum summary, took time.Duration, err error, imageNote string)
	alreadyApplied(rec *recipes.Recipe, prev *fsops.RunState)
}

// humanEvents prints one line per step and a summary.
type humanEvents struct {
	out     io.Writer
	verbose bool
	width   int
	total   int
}

func (h *humanEvents) runStart(rec *recipes.Recipe, _ recipes.Facts) {
	h.total = len(rec.Steps)
	h.width = len(fmt.Sprint(h.total))
}

func (h *humanEvents) stepStart(recipes.Step) {}

func (h *humanEvents) stepResult(st recipes.Step, o outcome) {
	line := fmt.Sprintf("[%*d/%d] %-60s %-8s %s", h.width, st.Index, h.total, st.Title(), o.status, fmtDuration(o.dur))
	switch {
	case o.status == statusSkipped:
		line += "  (" + o.why + ")"
	case o.res.Detail != "" && o.err == nil:
		line += "  (" + o.res.Detail + ")"
	}
	fmt.Fprintln(h.out, strings.TrimRight(line, " "))
	if o.err != nil {
		h.reportFailure(st, o)
	}
}

// reportFailure prints the rc and the last lines of stderr under the step.
func (h *humanEvents) reportFailure(st recipes.Step, o outcome) {
	var ce *fsops.CommandError
	if errors.As(o.err, &ce) {
		fmt.Fprintf(h.out, "    %s: %s\n", st.Op.Describe(), ce.Error())
		if tail := lastLinesOf(o.res.Stderr, 10); tail != "" && !h.verbose {
			for _, l := range strings.Split(tail, "\n") {
				fmt.Fprintf(h.out, "    stderr: %s\n", l)
			}
		}
		return
	}
	fmt.Fprintf(h.out, "    %s: %v\n", st.Op.Describe(), o.err)
}

func (h *humanEvents) runEnd(rec *recipes.Recipe, sum summary, took time.Duration, err error, imageNote string) {
	if err != nil {
		fmt.Fprintf(h.out, "%s: %s in %s — image %s\n", rec.Name, sum, took.Round(time.Millisecond), imageNote)
		return
	}
	fmt.Fprintf(h.out, "%s: %s in %s\n", rec.Name, sum, took.Round(time.Millisecond))
}

func (h *humanEvents) alreadyApplied(rec *recipes.Recipe, prev *fsops.RunState) {
	fmt.Fprintf(h.out, "%s: already applied at %s by imgbake %s (%d steps); nothing changed (use --force to run it again)\n",
		rec.Name, prev.Finished.Local().Format(time.DateTime), prev.Version, prev.StepsTotal)
}

// jsonEvents writes one JSON object per line.
type jsonEvents struct {
	enc *json.Encoder
}

func newJSONEvents(w io.Writer) *jsonEvents { return &jsonEvents{enc: json.NewEncoder(w)} }

type event struct {
	Event      string         `json:"event"`
	Time       time.Time      `json:"time"`
	Recipe     string         `json:"recipe,omitempty"`
	SHA256     string         `json:"recipe_sha256,omitempty"`
	Steps      int            `json:"steps,omitempty"`
	Facts      map[string]any `json:"facts,omitempty"`
	Index      int            `json:"index,omitempty"`
	Kind       string         `json:"kind,omitempty"`
	Title      string         `json:"title,omitempty"`
	Status     string         `json:"status,omitempty"`
	Reason     string         `json:"reason,omitempty"`
	DurationMS float64        `json:"duration_ms,omitempty"`
	RC         *int           `json:"rc,omitempty"`
	Stdout     string         `json:"stdout,omitempty"`
	Stderr     string         `json:"stderr,omitempty"`
	Detail     string         `json:"detail,omitempty"`
	Error      string         `json:"error,omitempty"`
	Summary    map[string]int `json:"summary,omitempty"`
	Image      string         `json:"image,omitempty"`
}

func (j *jsonEvents) emit(e event) {
	e.Time = time.Now().UTC()
	_ = j.enc.Encode(e)
}

func (j *jsonEvents) runStart(rec *recipes.Recipe, facts recipes.Facts) {
	j.emit(event{Event: "run_start", Recipe: rec.Name, SHA256: rec.SHA256, Steps: len(rec.Steps), Facts: rec.Data(facts)})
}

func (j *jsonEvents) stepStart(st recipes.Step) {
	j.emit(event{Event: "step_start", Index: st.Index, Kind: st.Op.Kind(), Title: st.Title()})
}

func (j *jsonEvents) stepResult(st recipes.Step, o outcome) {
	e := event{Event: "step_result", Index: st.Index, Kind: st.Op.Kind(), Title: st.Title(), Status: o.status,
		Reason: o.why, DurationMS: ms(o.dur), Stdout: o.res.Stdout, Stderr: o.res.Stderr, Detail: o.res.Detail}
	if st.Op.Kind() == "run" || st.Op.Kind() == "script" {
		rc := o.res.RC
		e.RC = &rc
	}
	if o.err != nil {
		e.Error = o.err.Error()
	}
	j.emit(e)
}

func (j *jsonEvents) runEnd(rec *recipes.Recipe, sum summary, took time.Duration, err error, imageNote string) {
	e := event{Event: "run_end", Recipe: rec.Name, Status: "ok", DurationMS: ms(took), Image: "changed",
		Summary: map[string]int{"ok": sum.ok, "changed": sum.changed, "skipped": sum.skipped, "failed": sum.failed, "ignored": sum.ignored}}
	if err != nil {
		e.Status, e.Error, e.Image = "failed", err.Error(), imageNote
	}
	j.emit(e)
}

func (j *jsonEvents) alreadyApplied(rec *recipes.Recipe, prev *fsops.RunState) {
	j.emit(event{Event: "run_end", Recipe: rec.Name, Status: "already_applied", Image: "unchanged",
		Reason: fmt.Sprintf("applied at %s by imgbake %s", prev.Finished.Format(time.RFC3339), prev.Version)})
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
