package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/imgbake/imgbake/appliance/proto"
	"github.com/imgbake/imgbake/bake"
)

func inspectCommand() *cli.Command {
	return &cli.Command{
		Name:  "inspect",
		Usage: "show the operating system, filesystems and mountpoints of a disk image (read-only)",
		Flags: append(diskFlags(), &cli.BoolFlag{Name: "json", Usage: "print one JSON object"}),
		Action: func(c *cli.Context) error {
			stdio := Stdio{In: c.App.Reader, Out: c.App.Writer, Err: c.App.ErrWriter}
			if c.NArg() != 0 {
				return usageErr("inspect takes no arguments (got %q)", c.Args().Slice())
			}
			op, err := openImage(c.Context, c, stdio, bake.Options{ReadOnly: true})
			if err != nil {
				return err
			}
			info, err := op.Session().Inspect(c.Context)
			if err != nil {
				op.Abort()
				return err
			}
			report := newInspectReport(info, op.Mounts())
			report.addRepairInfo(c.Context, op.Session())
			report.addOperatingSystems(c.Context, op.Session())
			if err := op.Finish(c.Context, false); err != nil {
				return err
			}
			if c.Bool("json") {
				enc := json.NewEncoder(stdio.Out)
				enc.SetIndent("", "  ")
				return enc.Encode(report)
			}
			report.print(stdio)
			return nil
		},
	}
}

type inspectOS struct {
	ID        string   `json:"id"`
	VersionID string   `json:"version_id"`
	Name      string   `json:"name,omitempty"`
	IDLike    []string `json:"id_like,omitempty"`
	Root      string   `json:"root"`
}

type inspectReport struct {
	OS             inspectOS          `json:"os"`
	Hostname       string             `json:"hostname"`
	Arch           string             `json:"arch"`
	PackageManager string             `json:"package_manager"`
	Filesystems    []proto.Filesystem `json:"filesystems"`
	Mountpoints    map[string]string  `json:"mountpoints"`
	Warnings       []string           `json:"warnings,omitempty"`
	// Filled by addRepairInfo (inspect_repair.go).
	Usage         []proto.FSUsage    `json:"usage,omitempty"`
	Kernels       []string           `json:"kernels,omitempty"`
	FstabProblems []proto.FstabEntry `json:"fstab_problems,omitempty"`
	// OperatingSystems lists every filesystem holding an OS root, the
	// mounted one included (multi-boot images have more than one).
	OperatingSystems []proto.OSRoot      `json:"operating_systems,omitempty"`
	VolumeGroups     []proto.VolumeGroup `json:"volume_groups,omitempty"`
}

func newInspectReport(info *proto.OSInfo, m *proto.MountResult) inspectReport {
	r := inspectReport{
		OS:             inspectOS{ID: info.ID, VersionID: info.VersionID, Name: info.PrettyName, IDLike: info.IDLike, Root: m.Root},
		Hostname:       info.Hostname,
		Arch:           info.Arch,
		PackageManager: info.PackageManager,
		Mountpoints:    map[string]string{},
		Warnings:       m.Warnings,
		VolumeGroups:   m.VolumeGroups,
	}
	for _, fs := range m.Filesystems {
		if fs.Type != "" {
			r.Filesystems = append(r.Filesystems, fs)
		}
	}
	for _, mt := range m.Mounts {
		r.Mountpoints[mt.Mountpoint] = mt.Device
	}
	return r
}

func (r inspectReport) print(stdio Stdio) {
	w := stdio.Out
	fmt.Fprintf(w, "os:              %s %s (%s)\n", r.OS.ID, r.OS.VersionID, r.OS.Name)
	fmt.Fprintf(w, "root:            %s\n", r.OS.Root)
	fmt.Fprintf(w, "hostname:        %s\n", r.Hostname)
	fmt.Fprintf(w, "arch:            %s\n", r.Arch)
	fmt.Fprintf(w, "package manager: %s\n", r.PackageManager)
	r.printOperatingSystems(w)
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
	r.printVolumeGroups(w)
	fmt.Fprintln(w, "mountpoints:")
	for _, mp := range sortedKeys(r.Mountpoints) {
		fmt.Fprintf(w, "  %-12s %s%s\n", mp, r.Mountpoints[mp], r.usageOf(mp))
	}
	r.printRepairInfo(w)
	for _, wn := range r.Warnings {
		fmt.Fprintf(w, "warning: %s\n", wn)
	}
}
