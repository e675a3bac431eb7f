package image

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Overlay is a private qcow2 layer over a base image: the appliance writes
// only here, so discarding it leaves the base byte-identical.
type Overlay struct {
	Path       string
	Base       string
	BaseFormat string
}

// ErrQemuImg marks failures of qemu-img itself.
var ErrQemuImg = errors.New("qemu-img failed")

func qemuImg(ctx context.Context, args ...string) error {
	bin, err := exec.LookPath("qemu-img")
	if err != nil {
		return fmt.Errorf("qemu-img not found: install qemu-utils: %w", err)
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: qemu-img %s: %v: %s", ErrQemuImg, args[0], err, strings.TrimSpace(string(out)))
	}
	return nil
}

// NewOverlay creates dir/name.qcow2 backed by base with its format stated
// explicitly (never probed).
func NewOverlay(ctx context.Context, dir, base, baseFormat string) (*Overlay, error) {
	abs, err := filepath.Abs(base)
	if err != nil {
		return nil, err
	}
	// A unique name: two disks may share a base name.
	f, err := os.CreateTemp(dir, "overlay-*-"+filepath.Base(base)+".qcow2")
	if err != nil {
		return nil, err
	}
	f.Close()
	// Absolute, so qemu-img never reads "name:" as a protocol prefix.
	p, err := filepath.Abs(f.Name())
	if err != nil {
		os.Remove(f.Name())
		return nil, err
	}
	if err := qemuImg(ctx, "create", "-q", "-f", "qcow2", "-F", baseFormat, "-b", abs, p); err != nil {
		os.Remove(p)
		return nil, err
	}
	return &Overlay{Path: p, Base: abs, BaseFormat: baseFormat}, nil
}

// Commit writes the overlay's changes into the base image.
func (o *Overlay) Commit(ctx context.Context) error {
	return qemuImg(ctx, "commit", "-q", "-d", o.Path)
}

// Export writes base+overlay as a new standalone image at dest.
func (o *Overlay) Export(ctx context.Context, dest, format string) error {
	// Absolute, so qemu-img never reads a relative "name:..." as a protocol.
	abs, err := filepath.Abs(dest)
	if err != nil {
		return err
	}
	tmp := abs + ".imgbake-partial"
	if err := qemuImg(ctx, "convert", "-q", "-f", "qcow2", "-O", format, o.Path, tmp); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, dest)
}

// Discard deletes the overlay.
func (o *Overlay) Discard() error { return os.Remove(o.Path) }
