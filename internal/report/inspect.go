package report

import (
	"fmt"
	"io"
	"strings"

	"github.com/imgbake/imgbake/fsops"
)

// Inspection writes the report of `imgbake inspect` for people.
func Inspection(w io.Writer, r *fsops.Inspection) {
	fmt.Fprintf(w, "os:              %s\n", osLine(r.OS))
	if r.OS.Family != "" && r.OS.Family != r.OS.ID {
		fmt.Fprintf(w, "family:          %s\n", SafeName(r.OS.Family))
	}
	if r.OS.ReleaseFile != "" {
		fmt.Fprintf(w, "identified by:   %s\n", r.OS.ReleaseFile)
	}
	fmt.Fprintf(w, "root:            %s\n", r.OS.Root)
	fmt.Fprintf(w, "hostname:        %s\n", SafeName(r.Hostname))
	fmt.Fprintf(w, "arch:            %s\n", r.Arch)
	fmt.Fprintf(w, "package manager: %s\n", packagesLine(r))
	printOperatingSystems(w, r)
	fmt.Fprintln(w, "filesystems:")
	width := 10 // LVM volumes (/dev/mapper/VG-LV) widen the device column
	for _, fs := range r.Filesystems {
		width = max(width, len(SafeName(fs.Device)))
	}
	for _, fs := range r.Filesystems {
		extra := []string{}
		if fs.UUID != "" {
			extra = append(extra, "UUID="+fs.UUID)
		}
		if fs.Label != "" {
			extra = append(extra, "LABEL="+fs.Label)
		}
		if fs.PartUUID != "" {
			extra = append(extra, "PARTUUID="+fs.PartUUID)
		}
		fmt.Fprintf(w, "  %-*s %-6s %s %s\n", width, SafeName(fs.Device), fs.Type, fsops.HumanBytes(fs.Size), SafeName(strings.Join(extra, " ")))
		for _, sv := range fs.Subvolumes {
			def := ""
			if sv.Path == fs.DefaultSubvolume {
				def = " (default)"
			}
			fmt.Fprintf(w, "  %-*s subvolume %d %s%s\n", width, "", sv.ID, SafeName(sv.Path), def)
		}
	}
	printVolumeGroups(w, r)
	printLUKS(w, r)
	fmt.Fprintln(w, "mountpoints:")
	for _, mp := range sortedKeys(r.Mountpoints) {
		dev := r.Mountpoints[mp]
		if sv, ok := r.Subvolumes[mp]; ok {
			dev += " subvol=" + SafeName("/"+sv)
		}
		fmt.Fprintf(w, "  %-12s %s%s\n", SafeName(mp), dev, usageOf(r, mp))
	}
	if len(r.BindMounts) > 0 {
		fmt.Fprintln(w, "bind mounts:")
		for _, mp := range sortedKeys(r.BindMounts) {
			fmt.Fprintf(w, "  %-12s from %s\n", SafeName(mp), SafeName(r.BindMounts[mp]))
		}
	}
	printRepairInfo(w, r)
	for _, wn := range r.Warnings {
		fmt.Fprintf(w, "warning: %s\n", wn)
	}
}

// osLine names the OS with what is known of it: "debian 12 (Debian GNU/Linux
// 12)", "centos", or "unknown" — never empty parentheses.
func osLine(o fsops.InspectedOS) string {
	s := strings.TrimSpace(o.ID + " " + o.VersionID)
	switch {
	case s == "" && o.Name == "":
		return "unknown"
	case s == "":
		return SafeName(o.Name)
	case o.Name != "":
		return SafeName(s + " (" + o.Name + ")")
	}
	return SafeName(s)
}

// packagesLine is the package manager with its format and database: "yum
// (rpm, database /var/lib/rpm/Packages)".
func packagesLine(r *fsops.Inspection) string {
	var about []string
	if r.PackageFormat != "" {
		about = append(about, r.PackageFormat)
	}
	if r.PackageDB != "" {
		about = append(about, "database "+SafeName(r.PackageDB))
	}
	if len(about) == 0 {
		if r.PackageManager == "" {
			return "none found" // a line never ends in an empty field
		}
		return r.PackageManager
	}
	return strings.TrimSpace(r.PackageManager + " (" + strings.Join(about, ", ") + ")")
}

// usageOf formats the usage of the filesystem mounted at mp.
func usageOf(r *fsops.Inspection, mp string) string {
	u, ok := r.UsageOf(mp)
	if !ok {
		return ""
	}
	return fmt.Sprintf("  (%s used of %s, %d%%; %s free)", fsops.HumanBytes(int64(u.Used)), fsops.HumanBytes(int64(u.Size)),
		(u.Used*100+u.Size/2)/u.Size, fsops.HumanBytes(int64(u.Avail)))
}

func printRepairInfo(w io.Writer, r *fsops.Inspection) {
	if len(r.Kernels) > 0 {
		fmt.Fprintf(w, "kernels:         %s\n", SafeName(strings.Join(r.Kernels, ", ")))
	}
	if len(r.FstabProblems) > 0 {
		fmt.Fprintln(w, "fstab problems:")
		for _, e := range r.FstabProblems {
			fmt.Fprintf(w, "  line %d: %s %s (%s): device not found\n", e.Line, SafeName(e.Spec), SafeName(e.Mountpoint), SafeName(e.Type))
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
			where = "mounted at " + SafeName(o.Mountpoint)
		}
		name := o.PrettyName
		if name == "" {
			name = strings.TrimSpace(o.ID + " " + o.VersionID)
		}
		if o.Subvolume != "" {
			where += ", subvolume " + SafeName(o.Subvolume)
		}
		fmt.Fprintf(w, "  %-22s %s, hostname %q (%s)\n", SafeName(o.Device), SafeName(name), o.Hostname, where)
	}
}

// printVolumeGroups lists the LVM volume groups and their logical volumes.
func printVolumeGroups(w io.Writer, r *fsops.Inspection) {
	if len(r.VolumeGroups) == 0 {
		return
	}
	fmt.Fprintln(w, "lvm volume groups:")
	for _, vg := range r.VolumeGroups {
		fmt.Fprintf(w, "  %s  %s, %s free, PVs %s\n", SafeName(vg.Name), fsops.HumanBytes(vg.Size), fsops.HumanBytes(vg.Free), SafeName(strings.Join(vg.PVs, " ")))
		if len(vg.MissingPVs) > 0 {
			fmt.Fprintf(w, "    missing PVs: %s\n", SafeName(strings.Join(vg.MissingPVs, " ")))
		}
		for _, lv := range vg.LVs {
			state := SafeName(lv.Device)
			if !lv.Active {
				state = "not active"
			}
			if lv.ReadOnly {
				state += ", read-only"
			}
			if lv.Note != "" {
				state += ": " + SafeName(lv.Note)
			}
			fmt.Fprintf(w, "    %-12s %-8s %-7s %s\n", SafeName(lv.Name), fsops.HumanBytes(lv.Size), lv.Type, state)
		}
	}
}

// printLUKS lists the LUKS volumes: opened as which mapping, or why not.
func printLUKS(w io.Writer, r *fsops.Inspection) {
	if len(r.LUKS) == 0 {
		return
	}
	fmt.Fprintln(w, "luks volumes:")
	for _, v := range r.LUKS {
		state := "opened as " + SafeName(v.Mapping)
		if v.Mapping == "" {
			state = "locked: " + SafeName(v.Problem)
		}
		fmt.Fprintf(w, "  %-10s LUKS%d %s, %s\n", SafeName(v.Device), v.Version, SafeName(v.UUID), state)
	}
}
