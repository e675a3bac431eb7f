package bake

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// A batch is `imgbake bake`: one recipe on many images (RunMany), each
// named by its file, optionally written to an output directory.

// BatchImage is one image of a batch and what becomes of it.
type BatchImage struct {
	Path   string // as given on the command line
	Name   string // its file name, or Path when two images share a file name
	Output string // where its result is written (with an output directory), else ""
}

// PlanBatch names the images (their file names, or the paths as given
// when two file names are the same), places their outputs in outDir, and
// refuses what would go wrong for the whole batch before anything is
// touched: an image given twice, two outputs on one path, an existing
// output, in-place with an output directory. A missing or unusable image is
// not refused here: it fails on its own, and the others go on.
func PlanBatch(paths []string, outDir string, o Options) ([]BatchImage, error) {
	count := map[string]int{}
	for _, a := range paths {
		count[filepath.Base(a)]++
	}
	images := make([]BatchImage, len(paths))
	outputs := map[string]string{}
	for i, a := range paths {
		im := BatchImage{Path: a, Name: filepath.Base(a)}
		if count[im.Name] > 1 {
			im.Name = a
		}
		if fi, err := os.Stat(a); err == nil {
			for _, prev := range images[:i] {
				if pfi, err := os.Stat(prev.Path); err == nil && os.SameFile(fi, pfi) {
					return nil, Classify(ErrUsage, fmt.Errorf("bake: %s and %s are the same image", prev.Path, a))
				}
			}
		}
		if outDir != "" {
			im.Output = filepath.Join(outDir, outputName(filepath.Base(a), o.OutputFormat))
			if prev, dup := outputs[im.Output]; dup {
				return nil, Classify(ErrUsage, fmt.Errorf("bake: --output-dir: %s and %s would both be written to %s", prev, a, im.Output))
			}
			outputs[im.Output] = a
			if _, err := os.Lstat(im.Output); err == nil {
				return nil, Classify(ErrUsage, fmt.Errorf("bake: --output-dir: %s already exists (it is never overwritten)", im.Output))
			}
		}
		oi := o
		oi.Output = im.Output
		if err := Check([]string{a}, oi); err != nil {
			return nil, err
		}
		images[i] = im
	}
	return images, nil
}

// outputName is an image's file name in the output directory: its own, or
// with the extension of format when that is given.
func outputName(base, format string) string {
	if format == "" {
		return base
	}
	return strings.TrimSuffix(base, filepath.Ext(base)) + OutputExtension(format)
}

// WriteBatchSummary writes each image's summary line (JobResult.Line), with
// the output it was written to.
func WriteBatchSummary(w io.Writer, images []BatchImage, results []JobResult) {
	for i, r := range results {
		line := r.Line()
		if r.Err == nil && images[i].Output != "" && !r.AlreadyApplied {
			line += " → " + images[i].Output
		}
		fmt.Fprintln(w, line)
	}
}

// batchResult is the JSON line of one image's outcome.
type batchResult struct {
	Event      string         `json:"event"` // image_result
	Time       time.Time      `json:"time"`
	Disk       string         `json:"disk"`
	Name       string         `json:"name"`
	Status     string         `json:"status"` // ok, already_applied, failed, interrupted, not_started
	ExitCode   int            `json:"exit_code"`
	DurationMS float64        `json:"duration_ms"`
	Summary    map[string]int `json:"summary,omitempty"`
	Output     string         `json:"output,omitempty"`
	Error      string         `json:"error,omitempty"`
}

// WriteBatchJSON writes one image_result line per image and a bake_end
// line with the batch's exit code and how many images failed.
func WriteBatchJSON(w io.Writer, images []BatchImage, results []JobResult, code, failed int) {
	enc := json.NewEncoder(w)
	for i, r := range results {
		e := batchResult{Event: "image_result", Time: time.Now().UTC(), Disk: images[i].Path, Name: r.Name, Status: "ok", ExitCode: r.Code,
			DurationMS: float64(r.Took.Microseconds()) / 1000, Output: images[i].Output}
		if r.Ran {
			s := r.Summary
			e.Summary = map[string]int{"ok": s.OK, "changed": s.Changed, "skipped": s.Skipped, "failed": s.Failed, "ignored": s.Ignored}
		}
		switch {
		case !r.Started:
			e.Status = "not_started"
		case r.Err != nil && (r.Code == ExitInterrupted || r.Code == ExitTerminated):
			e.Status = "interrupted"
		case r.Err != nil:
			e.Status = "failed"
		case r.AlreadyApplied:
			e.Status, e.Output = "already_applied", ""
		}
		if r.Err != nil {
			e.Error, e.Output = r.Err.Error(), ""
		}
		_ = enc.Encode(e)
	}
	_ = enc.Encode(struct {
		Event    string    `json:"event"`
		Time     time.Time `json:"time"`
		Images   int       `json:"images"`
		Failed   int       `json:"failed"`
		ExitCode int       `json:"exit_code"`
	}{"bake_end", time.Now().UTC(), len(results), failed, code})
}
