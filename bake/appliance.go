package bake

import (
	"context"

	"github.com/imgbake/imgbake/appliance"
)

// Appliance is the cached appliance and what a run would use of it, for
// `imgbake appliance build|info`.
type Appliance struct {
	*appliance.Appliance
	Manifest     appliance.Manifest
	Accel        string // kvm or tcg
	AccelNote    string // why, when KVM is not used
	Snapshot     string // the saved booted appliance for warm starts; "" when none yet
	SnapshotSize int64
}

// BuildAppliance builds the appliance for kernel ("" picks the host's)
// unless it is cached (force rebuilds it).
func BuildAppliance(kernel string, force bool) (*Appliance, error) {
	app, err := appliance.Build(appliance.BuildOptions{Kernel: kernel, Force: force})
	if err != nil {
		return nil, Classify(ErrImage, err)
	}
	return &Appliance{Appliance: app}, nil
}

// DescribeAppliance builds (or finds) the appliance and tells what a run
// with memoryMiB of memory would use: its manifest, the accelerator and the
// warm-start snapshot.
func DescribeAppliance(ctx context.Context, kernel string, memoryMiB int) (*Appliance, error) {
	a, err := BuildAppliance(kernel, false)
	if err != nil {
		return nil, err
	}
	if a.Manifest, err = a.ReadManifest(); err != nil {
		return nil, Classify(ErrImage, err)
	}
	a.Accel, a.AccelNote = appliance.ResolveAccel(ctx, a.Kernel.Image)
	if p, size, err := appliance.SnapshotInfo(a.Appliance, memoryMiB, false); err == nil {
		a.Snapshot, a.SnapshotSize = p, size
	}
	return a, nil
}
