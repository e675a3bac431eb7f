package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/imgbake/imgbake/bake"
	"github.com/imgbake/imgbake/fsops"
)

// usageOf formats the usage of the filesystem mounted at mp.
func usageOf(r *fsops.Inspection, mp string) string {
	u, ok := r.UsageOf(mp)
	if !ok {
		return ""
	}
	return fmt.Sprintf("  (%s used of %s, %d%%; %s free)", bake.HumanSize(int64(u.Used)), bake.HumanSize(int64(u.Size)),
		(u.Used*100+u.Size/2)/u.Size, bake.HumanSize(int64(u.Avail)))
}

func printRepairInfo(w io.Writer, r *fsops.Inspection) {
	if len(r.Kernels) > 0 {
		fmt.Fprintf(w, "kernels:         %s\n", safeName(strings.Join(r.Kernels, ", ")))
	}
	if len(r.FstabProblems) > 0 {
		fmt.Fprintln(w, "fstab problems:")
		for _, e := range r.FstabProblems {
			fmt.Fprintf(w, "  line %d: %s %s (%s): device not found\n", e.Line, safeName(e.Spec), safeName(e.Mountpoint), safeName(e.Type))
		}
	}
}

// printOperatingSystems lists the OS roots when there is more than the
// one already shown as "os:".
func printOperatingSystems(w io.Writer, r *fsops.Inspection) {
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
		if o.Subvolume != "" {
			where += ", subvolume " + safeName(o.Subvolume)
		}
		fmt.Fprintf(w, "  %-22s %s, hostname %q (%s)\n", safeName(o.Device), safeName(name), o.Hostname, where)
	}
}

// printVolumeGroups lists the LVM volume groups and their logical volumes.
func printVolumeGroups(w io.Writer, r *fsops.Inspection) {
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
