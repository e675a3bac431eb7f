package main

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strings"

	"github.com/imgbake/imgbake/appliance/kernel"
	"github.com/imgbake/imgbake/appliance/proto"
	"github.com/imgbake/imgbake/bake"
	"github.com/imgbake/imgbake/fsops"
)

// addRepairInfo adds what an admin repairing the image wants to see:
// filesystem usage, the kernels installed in /boot and the fstab entries
// that point to nothing. Each part is best effort: a failure leaves it out
// with a warning, the rest of inspect still works.
func (r *inspectReport) addRepairInfo(ctx context.Context, s fsops.Session) {
	if u, err := s.FSUsage(ctx); err == nil {
		r.Usage = u
	} else {
		r.Warnings = append(r.Warnings, "filesystem usage: "+err.Error())
	}
	if ents, err := s.ReadDir(ctx, "/boot"); err == nil {
		r.Kernels = kernelVersions(ents)
	}
	if rep, err := s.FstabCheck(ctx); err == nil {
		for _, e := range fsops.FstabProblems(rep) {
			r.FstabProblems = append(r.FstabProblems, e)
			r.Warnings = appendUnique(r.Warnings, fmt.Sprintf("/etc/fstab line %d: %s for %s: no such device in the image", e.Line, e.Spec, e.Mountpoint))
		}
	} else {
		r.Warnings = append(r.Warnings, "checking /etc/fstab: "+err.Error())
	}
}

// kernelVersions are the versions of the kernels in /boot (vmlinuz-VERSION,
// vmlinux-VERSION, kernel-VERSION), sorted.
func kernelVersions(ents []proto.DirEntry) []string {
	var out []string
	for _, e := range ents {
		m := fs.FileMode(e.Mode)
		if !m.IsRegular() && m&fs.ModeSymlink == 0 {
			continue
		}
		for _, p := range []string{"vmlinuz-", "vmlinux-", "kernel-"} {
			if v, ok := strings.CutPrefix(e.Name, p); ok && v != "" {
				out = append(out, safeName(v))
				break
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return kernel.VersionLess(out[i], out[j]) })
	return out
}

func appendUnique(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

// usageOf formats the usage of the filesystem mounted at mp.
func (r inspectReport) usageOf(mp string) string {
	for _, u := range r.Usage {
		if u.Mountpoint == mp && u.StatfsError == "" && u.Size > 0 {
			return fmt.Sprintf("  (%s used of %s, %d%%; %s free)", bake.HumanSize(int64(u.Used)), bake.HumanSize(int64(u.Size)),
				(u.Used*100+u.Size/2)/u.Size, bake.HumanSize(int64(u.Avail)))
		}
	}
	return ""
}

func (r inspectReport) printRepairInfo(w io.Writer) {
	if len(r.Kernels) > 0 {
		fmt.Fprintf(w, "kernels:         %s\n", strings.Join(r.Kernels, ", "))
	}
	if len(r.FstabProblems) > 0 {
		fmt.Fprintln(w, "fstab problems:")
		for _, e := range r.FstabProblems {
			fmt.Fprintf(w, "  line %d: %s %s (%s): device not found\n", e.Line, safeName(e.Spec), safeName(e.Mountpoint), safeName(e.Type))
		}
	}
}

// addOperatingSystems lists every OS root of the image (best effort, like
// addRepairInfo).
func (r *inspectReport) addOperatingSystems(ctx context.Context, s fsops.Session) {
	res, err := s.ListOS(ctx)
	if err != nil {
		r.Warnings = append(r.Warnings, "looking for other operating systems: "+err.Error())
		return
	}
	r.OperatingSystems = res.OSes
	for _, p := range res.Problems {
		r.Warnings = append(r.Warnings, "looking for an operating system on "+p)
	}
}

// printOperatingSystems lists the OS roots when there is more than the
// one already shown as "os:".
func (r inspectReport) printOperatingSystems(w io.Writer) {
	if len(r.OperatingSystems) < 2 {
		return
	}
	fmt.Fprintf(w, "operating systems: %d (multi-boot)\n", len(r.OperatingSystems))
	for _, o := range r.OperatingSystems {
		where := "not mounted"
		if o.Mountpoint == "/" {
			where = "root"
		} else if o.Mountpoint != "" {
			where = "mounted at " + safeName(o.Mountpoint)
		}
		name := o.PrettyName
		if name == "" {
			name = strings.TrimSpace(o.ID + " " + o.VersionID)
		}
		fmt.Fprintf(w, "  %-22s %s, hostname %q (%s)\n", safeName(o.Device), safeName(name), o.Hostname, where)
	}
}

// printVolumeGroups lists the LVM volume groups and their logical volumes.
func (r inspectReport) printVolumeGroups(w io.Writer) {
	if len(r.VolumeGroups) == 0 {
		return
	}
	fmt.Fprintln(w, "lvm volume groups:")
	for _, vg := range r.VolumeGroups {
		fmt.Fprintf(w, "  %s  %s, %s free, PVs %s\n", safeName(vg.Name), bake.HumanSize(vg.Size), bake.HumanSize(vg.Free), safeName(strings.Join(vg.PVs, " ")))
		if len(vg.MissingPVs) > 0 {
			fmt.Fprintf(w, "    missing PVs: %s\n", safeName(strings.Join(vg.MissingPVs, " ")))
		}
		for _, lv := range vg.LVs {
			state := safeName(lv.Device)
			if !lv.Active {
				state = "not active"
			}
			if lv.ReadOnly {
				state += ", read-only"
			}
			if lv.Note != "" {
				state += ": " + safeName(lv.Note)
			}
			fmt.Fprintf(w, "    %-12s %-8s %-7s %s\n", safeName(lv.Name), bake.HumanSize(lv.Size), lv.Type, state)
		}
	}
}
