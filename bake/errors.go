// Package bake owns a run: it opens disk images in one appliance (lock,
// overlay, boot, mounts), applies a recipe's steps with their rules
// (when, creates, changed_when, timeouts, run-once state), and commits,
// exports or discards the result. Commands and the session daemon call it;
// it takes plain option structs and never reads command-line flags.
package bake

import (
	"context"
	"errors"
	"strings"

	"github.com/imgbake/imgbake/appliance"
)

// Every error bake returns is classified by one of these sentinels, which
// the CLI maps to its exit codes; errors.Is(err, ErrImage) and so on. The
// classification closest to the caller wins (see Class).
var (
	// ErrUsage is bad input: an invalid recipe, a bad option. Nothing was touched.
	ErrUsage = errors.New("bad usage")
	// ErrStepFailed is a step that failed inside the image.
	ErrStepFailed = errors.New("step failed")
	// ErrImage is a disk or appliance problem: missing, locked or
	// unsupported disk, no OS found, the VM failing.
	ErrImage = errors.New("image or appliance error")
)

// classified is an error with its class; its message is the cause's.
type classified struct {
	class error
	err   error
}

func (e *classified) Error() string        { return e.err.Error() }
func (e *classified) Unwrap() error        { return e.err }
func (e *classified) Is(target error) bool { return target == e.class }

// Classify marks err as belonging to class (ErrUsage, ErrStepFailed or
// ErrImage). nil stays nil.
func Classify(class, err error) error {
	if err == nil {
		return nil
	}
	return &classified{class: class, err: err}
}

// Class returns the outermost classification of err, or nil when err
// carries none.
func Class(err error) error {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if c, ok := e.(*classified); ok {
			return c.class
		}
	}
	return nil
}

// OperationFailed classifies err from an operation on an open image (a
// repair command's read, edit or check) as ErrStepFailed: it failed inside
// the image. Errors that already have a class or code, an appliance that
// died, a broken agent channel and a cancelled context keep theirs.
func OperationFailed(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	var ce *codedError
	if ctx.Err() != nil || Class(err) != nil || errors.As(err, &ce) || errors.Is(err, appliance.ErrApplianceDied) {
		return err
	}
	var re *appliance.RemoteError
	if !errors.As(err, &re) && strings.Contains(err.Error(), "agent channel") {
		return Classify(ErrImage, err)
	}
	return Classify(ErrStepFailed, err)
}
