package bake

import (
	"context"
	"fmt"
	"time"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/recipes"
)

// runPlan is what the image's recorded state says about this run.
type runPlan struct {
	prev      *fsops.RunState
	skipAll   bool // the same recipe already completed: nothing to do
	startAt   int  // 1-based index of the first step to run
	resumeMsg string
}

// planRun applies the run-once rules (see README, "Run-once state"):
//   - the same recipe already applied completely: nothing to do;
//   - an --in-place run of the same recipe stopped part way: resume after
//     its last finished step;
//   - an interrupted run of a different recipe: refuse;
//
// --force ignores the recorded state and runs every step.
func planRun(prev *fsops.RunState, rec *recipes.Recipe, force bool) (runPlan, error) {
	p := runPlan{prev: prev, startAt: 1}
	if prev == nil || force {
		return p, nil
	}
	same := prev.RecipeSHA256 == rec.SHA256
	switch {
	case prev.Status == fsops.StatusComplete && same:
		p.skipAll = true
	case prev.Status == fsops.StatusRunning && same:
		p.startAt = prev.StepsDone + 1
		p.resumeMsg = fmt.Sprintf("an earlier --in-place run of this recipe stopped after step %d of %d (started %s); resuming at step %d",
			prev.StepsDone, prev.StepsTotal, prev.Started.Local().Format(time.DateTime), p.startAt)
	case prev.Status == fsops.StatusRunning:
		return p, Classify(ErrImage, fmt.Errorf("an earlier --in-place run of recipe %q stopped after step %d of %d (started %s); "+
			"refusing to apply a different recipe on top of it: re-run that recipe to finish it, or pass --force",
			prev.Recipe, prev.StepsDone, prev.StepsTotal, prev.Started.Local().Format(time.DateTime)))
	}
	return p, nil
}

// stateRecorder keeps the image's state file current: after every step
// when writing in place (so a crash is detectable), once at the end when
// the run goes to an overlay that is discarded on failure anyway.
type stateRecorder struct {
	sess        fsops.Session
	st          *fsops.RunState
	progressive bool
}

func (s *stateRecorder) begin(ctx context.Context) error {
	if !s.progressive {
		return nil
	}
	return fsops.WriteState(ctx, s.sess, s.st)
}

func (s *stateRecorder) stepDone(ctx context.Context, index int) error {
	s.st.StepsDone = index
	if !s.progressive {
		return nil
	}
	return fsops.WriteState(ctx, s.sess, s.st)
}

func (s *stateRecorder) complete(ctx context.Context) error {
	s.st.Status = fsops.StatusComplete
	s.st.Finished = time.Now().UTC()
	return fsops.WriteState(ctx, s.sess, s.st)
}
