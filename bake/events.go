package bake

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

// Events reports a run's progress, in the manner of Ignition's logger of
// started, finished and failed operations: lines for people
// (NewTextEvents), or one JSON object per line for CI (NewJSONEvents).
type Events interface {
	RunStart(rec *recipes.Recipe, facts recipes.Facts)
	StepStart(st recipes.Step)
	StepResult(st recipes.Step, o Outcome)
	// RunEnd closes a run; err is why it failed, imageNote what became of
	// the image then ("left unchanged", ...).
	RunEnd(rec *recipes.Recipe, sum Summary, took time.Duration, err error, imageNote string)
	AlreadyApplied(rec *recipes.Recipe, prev *fsops.RunState)
}

type nopEvents struct{}

func (nopEvents) RunStart(*recipes.Recipe, recipes.Facts)                       {}
func (nopEvents) StepStart(recipes.Step)                                        {}
func (nopEvents) StepResult(recipes.Step, Outcome)                              {}
func (nopEvents) RunEnd(*recipes.Recipe, Summary, time.Duration, error, string) {}
func (nopEvents) AlreadyApplied(*recipes.Recipe, *fsops.RunState)               {}

// NewTextEvents prints one line per step and a summary to w; verbose
// leaves stderr out of failure reports (it was streamed live).
func NewTextEvents(w io.Writer, verbose bool) Events { return &humanEvents{out: w, verbose: verbose} }

// humanEvents prints one line per step and a summary.
type humanEvents struct {
	out     io.Writer
	verbose bool
	width   int
	total   int
}

func (h *humanEvents) RunStart(rec *recipes.Recipe, _ recipes.Facts) {
	h.total = len(rec.Steps)
	h.width = len(fmt.Sprint(h.total))
}

func (h *humanEvents) StepStart(recipes.Step) {}

func (h *humanEvents) StepResult(st recipes.Step, o Outcome) {
	line := fmt.Sprintf("[%*d/%d] %-60s %-8s %s", h.width, st.Index, h.total, st.Title(), o.Status, fmtDuration(o.Took))
	switch {
	case o.Status == StatusSkipped || o.Status == StatusCached:
		line += "  (" + o.Why + ")"
	case o.Result.Detail != "" && o.Err == nil:
		line += "  (" + o.Result.Detail + ")"
	}
	fmt.Fprintln(h.out, strings.TrimRight(line, " "))
	if o.Err != nil {
		h.reportFailure(st, o)
	}
}

// reportFailure prints the rc and the last lines of stderr under the step.
func (h *humanEvents) reportFailure(st recipes.Step, o Outcome) {
	var ce *fsops.CommandError
	if errors.As(o.Err, &ce) {
		fmt.Fprintf(h.out, "    %s: %s\n", st.Op.Describe(), ce.Error())
		if tail := lastLinesOf(o.Result.Stderr, 10); tail != "" && !h.verbose {
			for _, l := range strings.Split(tail, "\n") {
				fmt.Fprintf(h.out, "    stderr: %s\n", l)
			}
		}
		return
	}
	fmt.Fprintf(h.out, "    %s: %v\n", st.Op.Describe(), o.Err)
}

func (h *humanEvents) RunEnd(rec *recipes.Recipe, sum Summary, took time.Duration, err error, imageNote string) {
	if err != nil {
		fmt.Fprintf(h.out, "%s: %s in %s — image %s\n", rec.Name, sum, took.Round(time.Millisecond), imageNote)
		return
	}
	fmt.Fprintf(h.out, "%s: %s in %s\n", rec.Name, sum, took.Round(time.Millisecond))
}

func (h *humanEvents) AlreadyApplied(rec *recipes.Recipe, prev *fsops.RunState) {
	fmt.Fprintf(h.out, "%s: already applied at %s by imgbake %s (%d steps); nothing changed (use --force to run it again)\n",
		rec.Name, prev.Finished.Local().Format(time.DateTime), prev.Version, prev.StepsTotal)
}

// jsonEvents writes one JSON object per line.
type jsonEvents struct {
	enc *json.Encoder
}

// NewJSONEvents writes one JSON event per line to w: run_start (with the
// facts), step_start, step_result (timings and output), run_end.
func NewJSONEvents(w io.Writer) Events { return &jsonEvents{enc: json.NewEncoder(w)} }

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

func (j *jsonEvents) RunStart(rec *recipes.Recipe, facts recipes.Facts) {
	j.emit(event{Event: "run_start", Recipe: rec.Name, SHA256: rec.SHA256, Steps: len(rec.Steps), Facts: rec.Data(facts)})
}

func (j *jsonEvents) StepStart(st recipes.Step) {
	j.emit(event{Event: "step_start", Index: st.Index, Kind: st.Op.Kind(), Title: st.Title()})
}

func (j *jsonEvents) StepResult(st recipes.Step, o Outcome) {
	e := event{Event: "step_result", Index: st.Index, Kind: st.Op.Kind(), Title: st.Title(), Status: o.Status,
		Reason: o.Why, DurationMS: ms(o.Took), Stdout: o.Result.Stdout, Stderr: o.Result.Stderr, Detail: o.Result.Detail}
	if st.Op.Kind() == "run" || st.Op.Kind() == "script" {
		rc := o.Result.RC
		e.RC = &rc
	}
	if o.Err != nil {
		e.Error = o.Err.Error()
	}
	j.emit(e)
}

func (j *jsonEvents) RunEnd(rec *recipes.Recipe, sum Summary, took time.Duration, err error, imageNote string) {
	e := event{Event: "run_end", Recipe: rec.Name, Status: "ok", DurationMS: ms(took), Image: "changed",
		Summary: map[string]int{"ok": sum.OK, "changed": sum.Changed, "skipped": sum.Skipped, "failed": sum.Failed, "ignored": sum.Ignored, "cached": sum.Cached}}
	if err != nil {
		e.Status, e.Error, e.Image = "failed", err.Error(), imageNote
	}
	j.emit(e)
}

func (j *jsonEvents) AlreadyApplied(rec *recipes.Recipe, prev *fsops.RunState) {
	j.emit(event{Event: "run_end", Recipe: rec.Name, Status: "already_applied", Image: "unchanged",
		Reason: fmt.Sprintf("applied at %s by imgbake %s", prev.Finished.Format(time.RFC3339), prev.Version)})
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
