package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// A commit copies the overlay's clusters into the base image. If imgbake
// dies part way, the base is a mix of old and new. A journal file beside
// the image records the commit while it runs; the next run that locks the
// image finds it and rolls the commit forward from the overlay, which
// `qemu-img commit -d` leaves intact, so repeating it is safe.

// ErrInterruptedCommit means an earlier commit into the image was cut off
// and cannot be completed (its overlay is gone).
var ErrInterruptedCommit = errors.New("an earlier commit into this image was interrupted")

// PendingCommit is a commit recorded in an image's journal.
type PendingCommit struct {
	Image      string    `json:"image"`
	Overlay    string    `json:"overlay"`
	BaseFormat string    `json:"base_format"`
	PID        int       `json:"pid"`
	Started    time.Time `json:"started"`
	journal    string
}

func journalPath(image string) (string, error) {
	abs, err := filepath.Abs(image)
	if err != nil {
		return "", err
	}
	return filepath.Join(filepath.Dir(abs), "."+filepath.Base(abs)+".imgbake-commit"), nil
}

// CommitJournaled commits the overlay into its base with a journal, so a
// crash in the middle is detected and repaired by the next run.
func (o *Overlay) CommitJournaled(ctx context.Context) error {
	jp, err := journalPath(o.Base)
	if err != nil {
		return err
	}
	// The overlay must outlive us if we die now: mark its directory.
	keep := filepath.Join(filepath.Dir(o.Path), ".keep")
	if err := os.WriteFile(keep, nil, 0o600); err != nil {
		return err
	}
	pc := PendingCommit{Image: o.Base, Overlay: o.Path, BaseFormat: o.BaseFormat, PID: os.Getpid(), Started: time.Now().UTC()}
	b, _ := json.MarshalIndent(pc, "", "  ")
	if err := writeFileSync(jp, b); err != nil {
		return fmt.Errorf("writing commit journal: %w", err)
	}
	if err := o.Commit(ctx); err != nil {
		// Leave the journal: the base may be half written and the next
		// run must finish the job.
		return err
	}
	if err := syncFile(o.Base); err != nil {
		return err
	}
	os.Remove(keep)
	return os.Remove(jp)
}

// Pending returns the interrupted commit recorded for image, or nil. Call
// it with the image's lock held, so the journal cannot belong to a live run.
func Pending(image string) (*PendingCommit, error) {
	jp, err := journalPath(image)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(jp)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	pc := &PendingCommit{journal: jp}
	if err := json.Unmarshal(b, pc); err != nil {
		return nil, fmt.Errorf("%w: unreadable commit journal %s: %v", ErrInterruptedCommit, jp, err)
	}
	return pc, nil
}

// Resume completes the interrupted commit from its overlay, or reports
// that it cannot.
func (p *PendingCommit) Resume(ctx context.Context) error {
	if _, err := os.Stat(p.Overlay); err != nil {
		return fmt.Errorf("%w at %s (pid %d) and its overlay %s is gone: the image may be inconsistent; check it (fsck) and then delete %s",
			ErrInterruptedCommit, p.Started.Format(time.RFC3339), p.PID, p.Overlay, p.journal)
	}
	o := &Overlay{Path: p.Overlay, Base: p.Image, BaseFormat: p.BaseFormat}
	if err := o.Commit(ctx); err != nil {
		return fmt.Errorf("completing the interrupted commit from %s: %w", p.Overlay, err)
	}
	if err := syncFile(p.Image); err != nil {
		return err
	}
	dir := filepath.Dir(p.Overlay)
	if strings.HasPrefix(filepath.Base(dir), "imgbake-run-") {
		os.RemoveAll(dir)
	} else {
		os.Remove(filepath.Join(dir, ".keep")) // its owner (a layer cache) may clean it up now
	}
	return os.Remove(p.journal)
}

// Journal is the path of the journal file, for messages.
func (p *PendingCommit) Journal() string { return p.journal }

func writeFileSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
