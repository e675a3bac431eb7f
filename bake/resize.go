package bake

import (
	"context"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/image"
)

// ParseDiskSize reads a new disk size: "20G" (absolute) or "+10G" (more
// than current), with K, M, G or T as powers of 1024 (qemu-img's units;
// "GiB" and "GB" mean the same here) or plain bytes, rounded up to a whole
// 512-byte sector.
func ParseDiskSize(spec string, current int64) (int64, error) {
	s := strings.TrimSpace(spec)
	relative := strings.HasPrefix(s, "+")
	s = strings.TrimPrefix(s, "+")
	upper := strings.ToUpper(s)
	upper = strings.TrimSuffix(strings.TrimSuffix(upper, "IB"), "B")
	mult := int64(1)
	if n := len(upper); n > 0 {
		switch upper[n-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult > 1 {
			upper = upper[:n-1]
		}
	}
	v, err := strconv.ParseFloat(upper, 64)
	if err != nil || v <= 0 || math.IsInf(v, 0) || v*float64(mult) > math.MaxInt64/2 {
		return 0, fmt.Errorf("size %q: expected e.g. 20G or +10G", spec)
	}
	n := int64(math.Ceil(v * float64(mult)))
	if relative {
		n += current
	}
	return (n + 511) / 512 * 512, nil
}

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
// ParseDiskSize), then the partition holding the root filesystem (or
// expand), its LVM volumes and the filesystem grow into the new space, and
// the result is committed (or exported to Options.Output).
func GrowDisk(ctx context.Context, disks []string, o Options, size, expand string, live io.Writer) (fsops.GrowResult, error) {
	if err := Check(disks, o); err != nil {
		return fsops.GrowResult{}, err
	}
	h, err := image.Resolve(disks[0], o.Format, o.AllowBacking)
	if err != nil {
		return fsops.GrowResult{}, Classify(ErrImage, err)
	}
	if o.DiskSize, err = ParseDiskSize(size, h.Size); err != nil {
		return fsops.GrowResult{}, Classify(ErrUsage, err)
	}
	if o.DiskSize == h.Size {
		return fsops.GrowResult{}, Classify(ErrUsage, fmt.Errorf("%s is already %s", disks[0], HumanSize(h.Size)))
	}
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
