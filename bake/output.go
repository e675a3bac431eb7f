package bake

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/imgbake/imgbake/appliance/proto"

	"github.com/imgbake/imgbake/image"
)

// output is how Options.Output is written.
func (o Options) output() (image.Output, error) {
	format, err := image.OutputFormatFor(o.Output, o.OutputFormat)
	if err != nil {
		return image.Output{}, err
	}
	out := image.Output{Format: format, Options: o.OutputOptions, Compress: o.Compress}
	if p := o.Progress; p != nil {
		phase := "writing " + o.Output
		out.Progress = func(pct float64) { p(phase, pct) }
	}
	return out, nil
}

// NewJSONProgress reports progress as JSON lines on w, in the manner of
// the run's events: {"event":"progress","phase":...,"percent":...}.
func NewJSONProgress(w io.Writer) func(phase string, percent float64) {
	enc := json.NewEncoder(w)
	return func(phase string, pct float64) {
		_ = enc.Encode(struct {
			Event   string    `json:"event"`
			Time    time.Time `json:"time"`
			Phase   string    `json:"phase"`
			Percent float64   `json:"percent"`
		}{"progress", time.Now().UTC(), phase, pct})
	}
}

// NewTerminalProgress draws a progress bar (schollz/progressbar) on one
// terminal line of w, a new one for each phase, ended with a newline at
// 100 %.
func NewTerminalProgress(w io.Writer) func(phase string, percent float64) {
	var (
		mu      sync.Mutex
		bar     *progressbar.ProgressBar
		current string
	)
	return func(phase string, pct float64) {
		mu.Lock()
		defer mu.Unlock()
		if bar == nil || phase != current {
			if bar != nil && !bar.IsFinished() {
				fmt.Fprintln(w) // an unfinished bar keeps its line
			}
			current = phase
			bar = progressbar.NewOptions(100,
				progressbar.OptionSetWriter(w),
				progressbar.OptionSetDescription(phase),
				progressbar.OptionSetWidth(30),
				progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }))
		}
		_ = bar.Set(int(min(max(pct, 0), 100)))
	}
}

// OutputExtension is the usual file name extension of an output format
// (".vhd" for "vhd" or "vpc"); "" for an unknown one.
func OutputExtension(format string) string {
	f, err := image.OutputFormatFor("", format)
	if err != nil {
		return ""
	}
	for _, of := range image.OutputFormats {
		if of.Format == f {
			return of.Extensions[0]
		}
	}
	return ""
}

// checkOutput validates the output flags before anything is opened.
func checkOutput(disks []string, o Options) error {
	if o.Output == "" {
		switch {
		case o.OutputFormat != "":
			return errors.New("--output-format needs --output")
		case o.OutputOptions != "":
			return errors.New("--output-options needs --output")
		case o.Compress != "":
			return errors.New("--compress needs --output (an image is compressed as it is written out)")
		}
	}
	if o.Output != "" {
		spec, err := o.output()
		if err != nil {
			return err
		}
		if err := spec.Check(); err != nil {
			return err
		}
	}
	if o.Sparsify && o.ReadOnly {
		return errors.New("sparsifying needs a writable image")
	}
	if (o.Checksum || o.Manifest != "") && o.ReadOnly {
		return errors.New("--checksum and --manifest are for a written image, not --ro")
	}
	if o.Checksum && o.Output == "" && len(disks) != 1 {
		return errors.New("--checksum needs one -a disk (or --output)")
	}
	return nil
}

// trims reports whether the free space is trimmed before the commit: for
// every export (the output then holds only used blocks) and when asked.
func (img *Image) trims() bool {
	return !img.opts.ReadOnly && (img.opts.Output != "" || img.opts.Sparsify)
}

// trim discards the free space of the image's filesystems. A failure costs
// only size, not correctness, so it is a notice, not an error.
func (img *Image) trim(ctx context.Context) {
	res, err := img.sess.Trim(ctx)
	if err != nil {
		fmt.Fprintf(img.notices, "imgbake: warning: free space not trimmed, the output may be larger than its data: %v\n", err)
		return
	}
	img.trimmed = res.Filesystems
	for _, fs := range res.Filesystems {
		img.logf("trimmed %s (%s): %s by %s", fs.Mountpoint, fs.Type, HumanSize(int64(fs.Bytes)), fs.Method)
	}
}

// TrimmedFS is what the trim before a commit did to one filesystem.
type TrimmedFS = proto.TrimmedFS

// TrimZeroed is the method of a filesystem whose free space was zeroed, not discarded.
const TrimZeroed = proto.TrimZeroed

// Trimmed says what the trim before the commit did, filesystem by
// filesystem (nil when there was none).
func (img *Image) Trimmed() []TrimmedFS { return img.trimmed }

// AllocatedSize is how much host disk space a file takes (its allocated
// blocks, not its apparent size: images are sparse).
func AllocatedSize(path string) (int64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Blocks * 512, nil
	}
	return fi.Size(), nil
}

// writtenImage is the file a commit wrote: the output, else the one disk.
func (img *Image) writtenImage() string {
	if img.opts.Output != "" {
		return img.opts.Output
	}
	if len(img.disks) == 1 {
		return img.disks[0].path
	}
	return ""
}

// writeChecksum writes IMAGE.sha256 beside the written image, in
// sha256sum's format with the image's base name, so that
// `sha256sum -c IMAGE.sha256` works in that directory.
func (img *Image) writeChecksum() error {
	if !img.opts.Checksum {
		return nil
	}
	path := img.writtenImage()
	sum, err := fileSHA256(path)
	if err != nil {
		return Classify(ErrImage, err)
	}
	line := fmt.Sprintf("%s  %s\n", sum, filepath.Base(path))
	if err := writeFileAtomic(path+".sha256", []byte(line), 0o644); err != nil {
		return Classify(ErrImage, fmt.Errorf("writing the checksum: %w", err))
	}
	img.logf("wrote %s.sha256", path)
	return nil
}

// fileSHA256 is the hex SHA-256 of a file's content.
func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hashing %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// writeFileAtomic writes data to path through a temporary file beside it,
// so a reader never sees half a file.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
