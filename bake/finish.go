package bake

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/imgbake/imgbake/fsops"
)

// Commit shuts the appliance down cleanly and writes the changes back into
// the images (journaled: a killed commit is completed by the next open),
// or exports them to Options.Output. A read-only or in-place image only
// shuts down. The Image is finished afterwards, whatever the result.
func (img *Image) Commit(ctx context.Context) error { return img.finish(ctx, true) }

// Discard ends the run without keeping its changes: the overlay is dropped
// and the input stays byte-identical. An in-place image is still shut
// down cleanly, since its filesystems must be unmounted.
func (img *Image) Discard(ctx context.Context) error { return img.finish(ctx, false) }

// Finish commits when commit is true, else discards.
func (img *Image) Finish(ctx context.Context, commit bool) error { return img.finish(ctx, commit) }

// Export shuts the appliance down and writes the result to a new
// standalone image at dest (qcow2, or raw for .raw/.img), leaving the input
// untouched. It needs an image opened through an overlay.
func (img *Image) Export(ctx context.Context, dest string) error {
	if img.opts.ReadOnly || img.opts.InPlace || len(img.disks) != 1 {
		_ = img.Discard(ctx)
		return Classify(ErrUsage, fmt.Errorf("export needs one disk opened through an overlay"))
	}
	img.opts.Output = dest
	return img.finish(ctx, true)
}

func (img *Image) finish(ctx context.Context, commit bool) error {
	defer img.release()
	ctx = context.WithoutCancel(ctx) // a started commit is finished even after Ctrl-C
	if img.sess != nil {
		var err error
		if commit && img.trims() {
			img.trim(ctx)
		}
		if commit || img.opts.InPlace {
			// In place, a clean unmount matters even after a failure.
			t := time.Now()
			err = img.sess.Close(ctx)
			img.timings.shutdown = time.Since(t)
		} else {
			img.sess.Kill()
		}
		img.sess = nil
		if err != nil {
			return Classify(ErrImage, err)
		}
	}
	// The layers are complete now that QEMU is gone; the chain the overlay
	// names must be in place before it is committed or exported.
	img.finishCache()
	if !commit || img.opts.ReadOnly || img.opts.InPlace {
		return nil
	}
	for _, d := range img.disks {
		if d.overlay == nil {
			continue
		}
		t := time.Now()
		if out := img.opts.Output; out != "" {
			spec, err := img.opts.output()
			if err != nil {
				return Classify(ErrUsage, err)
			}
			if err := d.overlay.Export(ctx, out, spec); err != nil {
				return Classify(ErrImage, err)
			}
			img.timings.commit += time.Since(t)
			img.logf("wrote %s in %s", out, time.Since(t).Round(time.Millisecond))
			continue
		}
		if err := d.overlay.CommitJournaled(ctx); err != nil {
			return Classify(ErrImage, fmt.Errorf("committing changes into %s: %w", d.path, err))
		}
		img.timings.commit += time.Since(t)
		img.logf("committed changes into %s in %s", d.path, time.Since(t).Round(time.Millisecond))
	}
	return img.writeChecksum()
}

// Abort kills the appliance and drops everything, for error paths: the
// images stay as they were (an in-place image as far as it got).
func (img *Image) Abort() {
	if img.sess != nil {
		img.sess.Kill()
		img.sess = nil
	}
	img.finishCache()
	img.release()
}

func (img *Image) release() {
	if img.runDir != "" {
		os.RemoveAll(img.runDir)
		img.runDir = ""
	}
	for _, l := range img.locks {
		l.Release()
	}
	img.locks = nil
}

// PrintTimings writes the --timings breakdown: where the wall time of the
// command went, total being from process start to exit.
func (img *Image) PrintTimings(w io.Writer, total time.Duration) {
	t := img.boot
	ms := func(d time.Duration) string { return fmt.Sprintf("%8.0f ms", float64(d.Microseconds())/1000) }
	fmt.Fprintln(w, "timings:")
	fmt.Fprintf(w, "  appliance build/cache   %s\n", ms(img.timings.build))
	fmt.Fprintf(w, "  qemu start + connect    %s\n", ms(t.QEMUStarted))
	if t.Warm {
		fmt.Fprintf(w, "  restore + hot-plug      %s  (warm start from the saved appliance)\n", ms(t.QEMUStarted))
	} else {
		fmt.Fprintf(w, "  guest kernel → agent    %s  (guest uptime at ready; cold boot)\n", ms(t.GuestUptime))
	}
	fmt.Fprintf(w, "  agent ready             %s  (since qemu start)\n", ms(t.Ready))
	fmt.Fprintf(w, "  mount filesystems       %s\n", ms(img.timings.mount))
	fmt.Fprintf(w, "  steps                   %s\n", ms(img.timings.steps))
	fmt.Fprintf(w, "  shutdown                %s\n", ms(img.timings.shutdown))
	fmt.Fprintf(w, "  commit/export           %s\n", ms(img.timings.commit))
	fmt.Fprintf(w, "  total                   %s\n", ms(total))
}

// HumanSize formats a byte count, e.g. "3.1 MiB".
func HumanSize(n int64) string { return fsops.HumanBytes(n) }
