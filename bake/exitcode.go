package bake

import (
	"context"
	"errors"

	"github.com/imgbake/imgbake/appliance"
	"github.com/imgbake/imgbake/image"
	"github.com/imgbake/imgbake/recipes"
)

// Exit codes of imgbake's commands, documented in --help and the README.
// The session protocol carries them from the daemon to its clients.
const (
	ExitOK          = 0
	ExitStepFailed  = 1
	ExitUsage       = 2
	ExitImage       = 3
	ExitInterrupted = 130
	ExitTerminated  = 143
)

// codedError carries an explicit exit code, for the cases a class does not
// decide (a session exec exits with its command's status).
type codedError struct {
	code int
	err  error
}

func (e *codedError) Error() string { return e.err.Error() }
func (e *codedError) Unwrap() error { return e.err }

// WithCode gives err an explicit exit code. nil stays nil.
func WithCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &codedError{code: code, err: err}
}

// ExitCode maps err to an exit code: an explicit code (WithCode) or class
// (Classify), whichever is outermost; else the sentinel errors of the
// recipe, image and appliance packages; else ExitImage. A cancelled
// context is ExitInterrupted: the caller knows which signal it was.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	for e := err; e != nil; e = errors.Unwrap(e) {
		switch x := e.(type) {
		case *codedError:
			return x.code
		case *classified:
			switch x.class {
			case ErrUsage:
				return ExitUsage
			case ErrStepFailed:
				return ExitStepFailed
			}
			return ExitImage
		}
	}
	switch {
	case errors.Is(err, context.Canceled):
		return ExitInterrupted
	case errors.Is(err, recipes.ErrInvalid):
		return ExitUsage
	}
	return ExitImage
}

// imageSentinels are the errors of the lower layers that mean a disk or
// appliance problem; they need no classification to exit 3.
var imageSentinels = []error{image.ErrNotFound, image.ErrFormat, image.ErrBackingFile, image.ErrLocked,
	appliance.ErrNoKernel, appliance.ErrNoAgent, appliance.ErrApplianceDied}

// IsImageError reports whether err is one of the disk or appliance
// sentinel errors.
func IsImageError(err error) bool {
	for _, s := range imageSentinels {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}
