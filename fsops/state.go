package fsops

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"strings"
	"time"
)

// StatePath is where a run records itself inside the image, the way
// Ignition records that it ran: the next run can tell the recipe was
// already applied, or that an --in-place run stopped part way.
const StatePath = "/var/lib/imgbake/state.json"

// Run statuses recorded in the state file.
const (
	StatusRunning  = "running"  // an --in-place run is (or was, if it died) under way
	StatusComplete = "complete" // every step succeeded
)

// RunState is the content of StatePath.
type RunState struct {
	Recipe       string    `json:"recipe"`        // recipe name
	RecipeFile   string    `json:"recipe_file"`   // as given on the command line
	RecipeSHA256 string    `json:"recipe_sha256"` // of the recipe file's bytes
	Status       string    `json:"status"`
	StepsTotal   int       `json:"steps_total"`
	StepsDone    int       `json:"steps_done"` // steps finished, in order, from the first
	Version      string    `json:"imgbake_version"`
	Started      time.Time `json:"started"`
	Finished     time.Time `json:"finished,omitzero"`
	// History keeps the previous runs, most recent last, a few at most.
	History []RunRecord `json:"history,omitempty"`
}

// RunRecord summarises an earlier run.
type RunRecord struct {
	Recipe       string    `json:"recipe"`
	RecipeSHA256 string    `json:"recipe_sha256"`
	Status       string    `json:"status"`
	StepsDone    int       `json:"steps_done"`
	Started      time.Time `json:"started"`
	Finished     time.Time `json:"finished,omitzero"`
}

const maxHistory = 20

// NewRun starts a new state for a run, carrying the previous state's
// history forward.
func NewRun(prev *RunState, recipe, file, sha string, steps int, version string) *RunState {
	st := &RunState{Recipe: recipe, RecipeFile: file, RecipeSHA256: sha, Status: StatusRunning,
		StepsTotal: steps, Version: version, Started: time.Now().UTC()}
	if prev != nil {
		st.History = append(st.History, prev.History...)
		st.History = append(st.History, RunRecord{Recipe: prev.Recipe, RecipeSHA256: prev.RecipeSHA256,
			Status: prev.Status, StepsDone: prev.StepsDone, Started: prev.Started, Finished: prev.Finished})
		if len(st.History) > maxHistory {
			st.History = st.History[len(st.History)-maxHistory:]
		}
	}
	return st
}

// ReadState returns the image's run state, or nil when it has none. A
// state file that cannot be parsed is an error: the image was tampered
// with or damaged, and the caller must not guess.
func ReadState(ctx context.Context, s Session) (*RunState, error) {
	b, err := ReadFile(ctx, s, StatePath, 4<<20)
	if err != nil {
		if isNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	var st RunState
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&st); err != nil {
		return nil, fmt.Errorf("%s in the image is damaged: %w (delete it or run with --force)", StatePath, err)
	}
	if st.Status != StatusRunning && st.Status != StatusComplete {
		return nil, fmt.Errorf("%s in the image has unknown status %q (delete it or run with --force)", StatePath, st.Status)
	}
	return &st, nil
}

// WriteState records st in the image.
func WriteState(ctx context.Context, s Session, st *RunState) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if _, err := Mkdir(ctx, s, "/var/lib/imgbake", WriteOptions{Mode: ptr(fs.FileMode(0o755))}); err != nil {
		return fmt.Errorf("recording the run state: %w", err)
	}
	mode := fs.FileMode(0o644)
	if _, err := WriteFile(ctx, s, StatePath, strings.NewReader(string(b)+"\n"), WriteOptions{Mode: &mode}); err != nil {
		return fmt.Errorf("recording the run state: %w", err)
	}
	return nil
}

func ptr[T any](v T) *T { return &v }
