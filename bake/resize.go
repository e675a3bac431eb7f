package bake

import (
	"context"
	"fmt"
	"io"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/image"
	"github.com/imgbake/imgbake/internal/disksize"
	"github.com/imgbake/imgbake/recipes"
)

// growDisk makes the first disk size bytes large before the appliance
// starts: its overlay (a qcow2 may be larger than its backing file; the
// commit grows the base) or the image itself when in place.
func (img *Image) growDisk(ctx context.Context, d *diskState, size int64) error {
	path, format := d.path, d.format
	if d.overlay != nil {
		path, format = d.overlay.Path, "qcow2"
	}
	if err := image.Resize(ctx, path, format, size); err != nil {
		return err
	}
	img.logf("disk %s grown from %s to %s", d.path, HumanSize(d.size), HumanSize(size))
	return nil
}

// GrowDisk is `imgbake resize`: the first disk grows to size (see
// disksize.Parse), then the partition holding the root filesystem (or
// expand), its LVM volumes and the filesystem grow into the new space, and
// the result is committed (or exported to Options.Output).
func GrowDisk(ctx context.Context, disks []string, o Options, size, expand string, live io.Writer) (fsops.GrowResult, error) {
	if err := Check(disks, o); err != nil {
		return fsops.GrowResult{}, err
	}
	want, current, err := targetSize(disks[0], o, size)
	if err != nil {
		return fsops.GrowResult{}, err
	}
	if want == current {
		return fsops.GrowResult{}, Classify(ErrUsage, fmt.Errorf("%s is already %s", disks[0], HumanSize(current)))
	}
	o.DiskSize = want
	o.Rescue = true
	img, err := Open(ctx, disks, o)
	if err != nil {
		return fsops.GrowResult{}, err
	}
	res, err := fsops.GrowRoot(ctx, img.ops, fsops.GrowOptions{Expand: expand, Output: live})
	if err != nil {
		img.Abort()
		return res, Classify(ErrStepFailed, fmt.Errorf("growing into the new space: %w", err))
	}
	return res, img.Commit(ctx)
}

// recipeDiskSize sets o.DiskSize when rec's disk_size is larger than the
// first disk, and says whether the root must then grow.
func recipeDiskSize(disks []string, o *Options, rec *recipes.Recipe) (bool, error) {
	if rec.DiskSize == "" {
		return false, nil
	}
	if o.Cache {
		return false, Classify(ErrUsage, fmt.Errorf("%s: disk_size cannot be combined with --cache yet (the layers would not record the size)", rec.File))
	}
	if o.ReadOnly || len(disks) == 0 {
		return false, nil
	}
	want, current, err := targetSize(disks[0], *o, rec.DiskSize)
	if err != nil {
		return false, err
	}
	if want <= current {
		return false, nil // as large already: a second run changes nothing
	}
	o.DiskSize, o.Rescue = want, true
	return true, nil
}

// growRoot grows the root's partition and filesystem into a disk that
// open made larger, before the first step.
func (img *Image) growRoot(ctx context.Context, size int64) error {
	var live io.Writer
	if img.opts.Logf != nil {
		live = img.notices
	}
	res, err := fsops.GrowRoot(ctx, img.ops, fsops.GrowOptions{Output: live})
	if err != nil {
		return Classify(ErrStepFailed, fmt.Errorf("disk_size %s: growing into the new space: %w", HumanSize(size), err))
	}
	fmt.Fprintf(img.notices, "imgbake: disk grown to %s: %s (%s on %s) %s → %s\n", HumanSize(size), res.Filesystem, res.Type,
		res.Mountpoint, HumanSize(int64(res.Before)), HumanSize(int64(res.After)))
	return nil
}

// targetSize reads a size spec against the current virtual size of disk.
func targetSize(disk string, o Options, spec string) (want, current int64, err error) {
	h, err := image.Resolve(disk, o.Format, o.AllowBacking)
	if err != nil {
		return 0, 0, Classify(ErrImage, err)
	}
	want, err = disksize.Parse(spec, h.Size)
	if err != nil {
		return 0, 0, Classify(ErrUsage, err)
	}
	return want, h.Size, nil
}
