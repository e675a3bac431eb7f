package image

import (
	"context"
	"encoding/json"
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

// Commit writes the overlay's changes into the base image, through every
// layer between them (a step-layer cache's chain, which stays as it is:
// -b implies -d).
func (o *Overlay) Commit(ctx context.Context) error {
	return qemuImg(ctx, "commit", "-q", "-b", o.Base, o.Path)
}

// NewLayeredOverlay creates dir/NAME.qcow2 over layer, a qcow2 whose chain
// ends in base: the overlay's Base is base, so Commit writes the changes of
// the whole chain into it.
func NewLayeredOverlay(ctx context.Context, dir, layer, base, baseFormat string) (*Overlay, error) {
	o, err := NewOverlay(ctx, dir, layer, "qcow2")
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(base)
	if err != nil {
		return nil, err
	}
	o.Base, o.BaseFormat = abs, baseFormat
	return o, nil
}

// CreateOverlayUnchecked creates an empty qcow2 at path of size bytes whose
// header names backing (format backingFormat) without opening it: for a
// layer that is moved to that path later.
func CreateOverlayUnchecked(ctx context.Context, path, backing, backingFormat string, size int64) error {
	return qemuImg(ctx, "create", "-q", "-f", "qcow2", "-u", "-F", backingFormat, "-b", backing, path, fmt.Sprint(size))
}

// Rebase points the qcow2 at path at backing (format backingFormat)
// without copying anything: only right when backing holds the same data
// as the file it replaces.
func Rebase(ctx context.Context, path, backing, backingFormat string) error {
	return qemuImg(ctx, "rebase", "-q", "-u", "-f", "qcow2", "-F", backingFormat, "-b", backing, path)
}

// VirtualSize is the size of the disk the image at path holds.
func VirtualSize(ctx context.Context, path, format string) (int64, error) {
	bin, err := exec.LookPath("qemu-img")
	if err != nil {
		return 0, fmt.Errorf("qemu-img not found: install qemu-utils: %w", err)
	}
	out, err := exec.CommandContext(ctx, bin, "info", "--output=json", "-f", format, path).Output()
	if err != nil {
		return 0, fmt.Errorf("%w: qemu-img info %s: %v", ErrQemuImg, path, err)
	}
	var info struct {
		VirtualSize int64 `json:"virtual-size"`
	}
	if err := json.Unmarshal(out, &info); err != nil || info.VirtualSize <= 0 {
		return 0, fmt.Errorf("%w: qemu-img info %s: no virtual size", ErrQemuImg, path)
	}
	return info.VirtualSize, nil
}

// Discard deletes the overlay.
func (o *Overlay) Discard() error { return os.Remove(o.Path) }
