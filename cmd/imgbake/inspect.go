package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/imgbake/imgbake/bake"
	"github.com/imgbake/imgbake/fsops"
)

func inspectCommand() *cli.Command {
	return &cli.Command{
		Name:  "inspect",
		Usage: "show the operating system, filesystems and mountpoints of a disk image (read-only)",
		Description: "Also every OS found, LVM volume groups and volumes, usage per filesystem, the kernels in /boot\n" +
			"and the fstab entries that point to nothing.\n\n" + example("imgbake inspect -a disk.qcow2", "imgbake inspect -a disk.qcow2 --json"),
		Flags: append(diskFlags(), &cli.BoolFlag{Name: "json", Usage: "print one JSON object"}),
		Action: func(c *cli.Context) error {
			stdio := stdioOf(c)
			if c.NArg() != 0 {
				return usageErr("inspect takes no arguments (got %q)", c.Args().Slice())
			}
			op, err := openImage(c.Context, c, stdio, bake.Options{ReadOnly: true})
			if err != nil {
				return err
			}
			report, err := fsops.Inspect(c.Context, op.Session(), op.Mounts())
			if err != nil {
				op.Abort()
				return err
			}
			if err := op.Finish(c.Context, false); err != nil {
				return err
			}
			if c.Bool("json") {
				enc := json.NewEncoder(stdio.Out)
				enc.SetIndent("", "  ")
				return enc.Encode(report)
			}
			printInspection(stdio, report)
			return nil
		},
	}
}

// printInspection writes the report for people.
func printInspection(stdio Stdio, r *fsops.Inspection) {
	w := stdio.Out
	fmt.Fprintf(w, "os:              %s\n", osLine(r.OS))
	if r.OS.Family != "" && r.OS.Family != r.OS.ID {
		fmt.Fprintf(w, "family:          %s\n", safeName(r.OS.Family))
	}
	if r.OS.ReleaseFile != "" {
		fmt.Fprintf(w, "identified by:   %s\n", r.OS.ReleaseFile)
	}
	fmt.Fprintf(w, "root:            %s\n", r.OS.Root)
	fmt.Fprintf(w, "hostname:        %s\n", safeName(r.Hostname))
	fmt.Fprintf(w, "arch:            %s\n", r.Arch)
	fmt.Fprintf(w, "package manager: %s\n", packagesLine(r))
	printOperatingSystems(w, r)
	fmt.Fprintln(w, "filesystems:")
	width := 10 // LVM volumes (/dev/mapper/VG-LV) widen the device column
	for _, fs := range r.Filesystems {
		width = max(width, len(safeName(fs.Device)))
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
		fmt.Fprintf(w, "  %-*s %-6s %s %s\n", width, safeName(fs.Device), fs.Type, bake.HumanSize(fs.Size), safeName(strings.Join(extra, " ")))
	}
	printVolumeGroups(w, r)
	printLUKS(w, r)
	fmt.Fprintln(w, "mountpoints:")
	for _, mp := range sortedKeys(r.Mountpoints) {
		fmt.Fprintf(w, "  %-12s %s%s\n", safeName(mp), r.Mountpoints[mp], usageOf(r, mp))
	}
	if len(r.BindMounts) > 0 {
		fmt.Fprintln(w, "bind mounts:")
		for _, mp := range sortedKeys(r.BindMounts) {
			fmt.Fprintf(w, "  %-12s from %s\n", safeName(mp), safeName(r.BindMounts[mp]))
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
		return safeName(o.Name)
	case o.Name != "":
		return safeName(s + " (" + o.Name + ")")
	}
	return safeName(s)
}

// packagesLine is the package manager with its format and database: "yum
// (rpm, database /var/lib/rpm/Packages)".
func packagesLine(r *fsops.Inspection) string {
	var about []string
	if r.PackageFormat != "" {
		about = append(about, r.PackageFormat)
	}
	if r.PackageDB != "" {
		about = append(about, "database "+safeName(r.PackageDB))
	}
	if len(about) == 0 {
		return r.PackageManager
	}
	return strings.TrimSpace(r.PackageManager + " (" + strings.Join(about, ", ") + ")")
}
