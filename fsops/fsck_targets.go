package fsops

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/imgbake/imgbake/appliance/proto"
)

var (
	deviceNameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)
	lvmNameRE    = regexp.MustCompile(`^[A-Za-z0-9+_.][A-Za-z0-9+_.-]{0,126}$`)
)

// DeviceArg checks a DEVICE argument: an appliance device name, with or
// without /dev/, or an LVM volume as mapper/VG-LV or VG/LV.
func DeviceArg(a string) (string, error) {
	name := strings.TrimPrefix(a, "/dev/")
	if m, ok := strings.CutPrefix(name, "mapper/"); ok && isLVMName(m) {
		return proto.MapperPath(m), nil
	}
	if vg, lv, ok := strings.Cut(name, "/"); ok && isLVMName(vg) && isLVMName(lv) {
		return proto.LVDevice(vg, lv), nil
	}
	if !deviceNameRE.MatchString(name) {
		return "", fmt.Errorf("%q is not a device name (e.g. vda3, /dev/vda3 or vg0/root; `imgbake inspect` lists them)", a)
	}
	return "/dev/" + name, nil
}

// isLVMName reports whether s may name an LVM volume group or volume.
func isLVMName(s string) bool {
	return lvmNameRE.MatchString(s) && s != "." && s != ".."
}

// FsckTargets picks the filesystems to check: the devices asked for, or
// every checkable one. An unknown device is ErrNoDevice; no checkable
// filesystem at all is ErrNothingToCheck.
func FsckTargets(fss []proto.Filesystem, want []string) ([]proto.Filesystem, error) {
	var names []string
	byDev := map[string]proto.Filesystem{}
	for _, f := range fss {
		byDev[f.Device] = f
		desc := f.Device
		if f.Type != "" {
			desc += " (" + f.Type + ")"
		}
		names = append(names, desc)
	}
	if len(want) > 0 {
		var out []proto.Filesystem
		for _, d := range want {
			f, ok := byDev[d]
			if !ok {
				return nil, fmt.Errorf("%w %s in the image (devices: %s)", ErrNoDevice, d, strings.Join(names, ", "))
			}
			out = append(out, f)
		}
		return out, nil
	}
	var out []proto.Filesystem
	for _, f := range fss {
		if Checkable(f.Type) || f.Type == proto.TypeLVMPV {
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w (devices: %s)", ErrNothingToCheck, strings.Join(names, ", "))
	}
	return out, nil
}

// FilesystemIdent names a filesystem by label or UUID, for output.
func FilesystemIdent(f proto.Filesystem) string {
	switch {
	case f.Label != "":
		return ", LABEL=" + f.Label
	case f.UUID != "":
		return ", UUID=" + f.UUID
	}
	return ""
}

// Errors of FsckTargets.
var (
	ErrNoDevice       = errors.New("no device")
	ErrNothingToCheck = errors.New("no filesystem to check")
)

// SummarizeFsck is the one-line verdict over every filesystem checked,
// whether the image should be written (something was repaired), and
// whether errors were found or remain.
func SummarizeFsck(results []FsckResult, repair bool) (summary string, commit, bad bool) {
	counts := map[string]int{}
	for _, r := range results {
		counts[r.Status]++
		switch r.Status {
		case FsckRepaired, FsckErrorsRemain:
			commit = repair
		case FsckErrorsFound, FsckFailed:
			bad = true
		}
		if r.Status == FsckErrorsRemain {
			bad = true
		}
	}
	var parts []string
	for _, s := range []string{FsckClean, FsckRepaired, FsckErrorsFound, FsckErrorsRemain, FsckFailed, FsckSkipped} {
		if counts[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[s], s))
		}
	}
	summary = "fsck: " + strings.Join(parts, ", ")
	switch {
	case commit:
		summary += "; the repairs were written to the image"
	case repair:
		summary += "; nothing was repaired, the image is unchanged"
	case counts[FsckErrorsFound] > 0:
		summary += "; run with --repair to fix"
	}
	return summary, commit, bad
}
