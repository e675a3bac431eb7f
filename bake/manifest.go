package bake

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/image"
	"github.com/imgbake/imgbake/recipes"
)

// Manifest is the record of a run that `--manifest FILE` writes: what went
// in, what came out, every step's result and what the image has installed.
type Manifest struct {
	Imgbake  string             `json:"imgbake"` // version
	Created  string             `json:"created"` // RFC 3339, UTC
	Inputs   []ManifestImage    `json:"inputs"`  // as they were before the run
	Output   ManifestImage      `json:"output"`  // the image written
	Recipe   ManifestRecipe     `json:"recipe"`
	Summary  map[string]int     `json:"summary"`
	Steps    []StepRecord       `json:"steps"`
	Packages *fsops.PackageList `json:"packages,omitempty"`
	// PackagesError says why the package list is missing.
	PackagesError string `json:"packages_error,omitempty"`
}

// ManifestImage is one disk image.
type ManifestImage struct {
	Path        string `json:"path"`
	Format      string `json:"format"`
	SHA256      string `json:"sha256"`
	VirtualSize int64  `json:"virtual_size"`
}

// ManifestRecipe names the recipe.
type ManifestRecipe struct {
	Name   string `json:"name,omitempty"`
	File   string `json:"file"`
	SHA256 string `json:"sha256"`
}

// manifestRun gathers a manifest while a run goes on: the inputs are
// hashed before anything writes to them (beside the boot, when the run
// writes to an overlay), the package list while the appliance is up.
type manifestRun struct {
	path     string
	inputs   chan inputHashes
	packages *fsops.PackageList
	pkgErr   error
}

type inputHashes struct {
	images []ManifestImage
	err    error
}

func startManifest(ctx context.Context, disks []string, o Options) *manifestRun {
	if o.Manifest == "" {
		return nil
	}
	m := &manifestRun{path: o.Manifest, inputs: make(chan inputHashes, 1)}
	hash := func() {
		var h inputHashes
		for _, d := range disks {
			sum, err := fileSHA256(d)
			if err != nil {
				h.err = err
				break
			}
			h.images = append(h.images, ManifestImage{Path: d, SHA256: sum})
		}
		m.inputs <- h
	}
	if o.InPlace {
		hash() // the run writes into the input itself
	} else {
		go hash()
	}
	return m
}

// gatherPackages lists the image's packages, as the run left them.
func (m *manifestRun) gatherPackages(ctx context.Context, img *Image) {
	if m == nil {
		return
	}
	list, err := fsops.InstalledPackages(ctx, img.ops)
	if err != nil {
		m.pkgErr = err
		return
	}
	m.packages = &list
}

// write completes the manifest once the image is written.
func (m *manifestRun) write(ctx context.Context, img *Image, rec *recipes.Recipe, applied Applied) error {
	if m == nil {
		return nil
	}
	in := <-m.inputs
	if in.err != nil {
		return Classify(ErrImage, fmt.Errorf("manifest: hashing the input: %w", in.err))
	}
	for i := range in.images {
		if i < len(img.disks) {
			in.images[i].Format = img.disks[i].format
			in.images[i].VirtualSize, _ = image.VirtualSize(ctx, img.disks[i].path, img.disks[i].format)
		}
	}
	man := Manifest{
		Imgbake: Version, Created: time.Now().UTC().Format(time.RFC3339),
		Inputs: in.images, Recipe: ManifestRecipe{Name: rec.Name, File: rec.File, SHA256: rec.SHA256},
		Summary: map[string]int{"ok": applied.Summary.OK, "changed": applied.Summary.Changed, "skipped": applied.Summary.Skipped,
			"failed": applied.Summary.Failed, "ignored": applied.Summary.Ignored, "cached": applied.Summary.Cached},
		Steps: applied.Steps, Packages: m.packages,
	}
	if man.Steps == nil {
		man.Steps = []StepRecord{}
	}
	if m.pkgErr != nil {
		man.PackagesError = m.pkgErr.Error()
	}
	out := img.writtenImage()
	man.Output = ManifestImage{Path: out, Format: img.writtenFormat()}
	sum, err := fileSHA256(out)
	if err != nil {
		return Classify(ErrImage, fmt.Errorf("manifest: %w", err))
	}
	man.Output.SHA256 = sum
	man.Output.VirtualSize, _ = image.VirtualSize(ctx, out, man.Output.Format)
	data, err := json.MarshalIndent(man, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(m.path, append(data, '\n'), 0o644); err != nil {
		return Classify(ErrImage, fmt.Errorf("writing the manifest: %w", err))
	}
	img.logf("wrote the manifest %s", m.path)
	return nil
}

// writtenFormat is the format of writtenImage.
func (img *Image) writtenFormat() string {
	if img.opts.Output != "" {
		if spec, err := img.opts.output(); err == nil {
			return spec.Format
		}
	}
	if len(img.disks) == 1 {
		return img.disks[0].format
	}
	return ""
}
