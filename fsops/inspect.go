package fsops

import (
	"context"
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"strings"

	"github.com/imgbake/imgbake/appliance/proto"
	"github.com/imgbake/imgbake/internal/vercmp"
)

// InspectedOS is the operating system that was mounted.
type InspectedOS struct {
	ID        string   `json:"id"`
	VersionID string   `json:"version_id"`
	Name      string   `json:"name,omitempty"`
	IDLike    []string `json:"id_like,omitempty"`
	Family    string   `json:"family"`
	Root      string   `json:"root"`
	// RootSubvolume is the btrfs subvolume mounted as / ("" for the top
	// level or another filesystem).
	RootSubvolume string `json:"root_subvolume,omitempty"`
	// ReleaseFile is what the OS was identified by (/etc/os-release, or
	// /etc/redhat-release and the like on older systems).
	ReleaseFile string `json:"release_file,omitempty"`
}

// Inspection is what `imgbake inspect` reports about an image.
type Inspection struct {
	OS             InspectedOS        `json:"os"`
	Hostname       string             `json:"hostname"`
	Arch           string             `json:"arch"`
	PackageManager string             `json:"package_manager"`
	PackageFormat  string             `json:"package_format,omitempty"` // rpm, deb, ...
	PackageDB      string             `json:"package_db,omitempty"`     // where the package database is
	Filesystems    []proto.Filesystem `json:"filesystems"`
	Mountpoints    map[string]string  `json:"mountpoints"`
	// Subvolumes are the btrfs subvolumes mounted: mountpoint → the
	// subvolume's path from the top level ("" is the top level).
	Subvolumes map[string]string `json:"subvolumes,omitempty"`
	// BindMounts are the fstab's bind mounts: mountpoint → source path.
	BindMounts map[string]string `json:"bind_mounts,omitempty"`
	Warnings   []string          `json:"warnings,omitempty"`
	// What an admin repairing the image wants to see.
	Usage         []proto.FSUsage    `json:"usage,omitempty"`
	Kernels       []string           `json:"kernels,omitempty"`
	FstabProblems []proto.FstabEntry `json:"fstab_problems,omitempty"`
	// OperatingSystems lists every filesystem holding an OS root, the
	// mounted one included (multi-boot images have more than one).
	OperatingSystems []proto.OSRoot      `json:"operating_systems,omitempty"`
	VolumeGroups     []proto.VolumeGroup `json:"volume_groups,omitempty"`
	// LUKS are the encrypted volumes, opened (--key) or not.
	LUKS []proto.LUKSVolume `json:"luks,omitempty"`
}

// Inspect describes the image open in s, whose filesystems were mounted
// as m says. The OS facts are required; usage, kernels, fstab problems and
// other operating systems are best effort: a failure leaves them out with
// a warning.
func Inspect(ctx context.Context, s Session, m *proto.MountResult) (*Inspection, error) {
	info, err := s.Inspect(ctx)
	if err != nil {
		return nil, err
	}
	r := &Inspection{
		OS: InspectedOS{ID: info.ID, VersionID: info.VersionID, Name: info.PrettyName, IDLike: info.IDLike,
			Family: info.Family, Root: m.Root, ReleaseFile: info.ReleaseFile},
		Hostname:       info.Hostname,
		Arch:           info.Arch,
		PackageManager: info.PackageManager,
		PackageFormat:  info.PackageFormat,
		PackageDB:      info.PackageDB,
		Mountpoints:    map[string]string{},
		Warnings:       slices.Clone(m.Warnings),
		VolumeGroups:   m.VolumeGroups,
		LUKS:           m.LUKS,
	}
	if info.PackageFormat != "" && info.PackageDB == "" {
		r.Warnings = append(r.Warnings, fmt.Sprintf("no %s package database found in the image", info.PackageFormat))
	}
	for _, f := range m.Filesystems {
		if f.Type != "" {
			r.Filesystems = append(r.Filesystems, f)
		}
	}
	for _, mt := range m.Mounts {
		r.Mountpoints[mt.Mountpoint] = mt.Device
		if mt.Type == "btrfs" {
			if r.Subvolumes == nil {
				r.Subvolumes = map[string]string{}
			}
			r.Subvolumes[mt.Mountpoint] = mt.Subvolume
			if mt.Mountpoint == "/" {
				r.OS.RootSubvolume = mt.Subvolume
			}
		}
	}
	for _, b := range m.Binds {
		if r.BindMounts == nil {
			r.BindMounts = map[string]string{}
		}
		r.BindMounts[b.Mountpoint] = b.Source
	}
	if u, err := s.FSUsage(ctx); err == nil {
		r.Usage = u
	} else {
		r.Warnings = append(r.Warnings, "filesystem usage: "+err.Error())
	}
	if ents, err := s.ReadDir(ctx, "/boot"); err == nil {
		r.Kernels = KernelVersions(ents)
	}
	if rep, err := s.FstabCheck(ctx); err == nil {
		for _, e := range FstabProblems(rep) {
			r.FstabProblems = append(r.FstabProblems, e)
			// The mount warned of most already (a nofail entry with a note).
			w := proto.FstabMissingWarning(e.Line, e.Spec, e.Mountpoint)
			if !slices.ContainsFunc(r.Warnings, func(s string) bool { return strings.HasPrefix(s, w) }) {
				r.Warnings = append(r.Warnings, w)
			}
		}
	} else {
		r.Warnings = append(r.Warnings, "checking /etc/fstab: "+err.Error())
	}
	if res, err := s.ListOS(ctx); err == nil {
		r.OperatingSystems = res.OSes
		for _, p := range res.Problems {
			r.Warnings = append(r.Warnings, "looking for an operating system on "+p)
		}
	} else {
		r.Warnings = append(r.Warnings, "looking for other operating systems: "+err.Error())
	}
	return r, nil
}

// KernelVersions are the versions of the kernels in a /boot listing
// (vmlinuz-VERSION, vmlinux-VERSION, kernel-VERSION), oldest first.
func KernelVersions(ents []proto.DirEntry) []string {
	var out []string
	for _, e := range ents {
		m := fs.FileMode(e.Mode)
		if !m.IsRegular() && m&fs.ModeSymlink == 0 {
			continue
		}
		for _, p := range []string{"vmlinuz-", "vmlinux-", "kernel-"} {
			if v, ok := strings.CutPrefix(e.Name, p); ok && v != "" {
				out = append(out, v)
				break
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return vercmp.Less(out[i], out[j]) })
	return out
}

// UsageOf is the usage of the filesystem mounted at mp, if known.
func (r *Inspection) UsageOf(mp string) (proto.FSUsage, bool) {
	for _, u := range r.Usage {
		if u.Mountpoint == mp && u.StatfsError == "" && u.Size > 0 {
			return u, true
		}
	}
	return proto.FSUsage{}, false
}
