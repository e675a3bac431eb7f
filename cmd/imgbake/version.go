package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/imgbake/imgbake/bake"
	"github.com/imgbake/imgbake/internal/clidocs"
)

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:        "version",
		Usage:       "print the version and what this host offers: qemu, the appliance kernel, KVM",
		Description: clidocs.Text("version"),
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object: version, commit, go_version, platform, qemu, kernel, kvm"},
			&cli.StringFlag{Name: "kernel", Usage: "look for this appliance kernel `VMLINUZ` instead of the host's"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 0 {
				return usageErr("version takes no arguments (got %q)", c.Args().Slice())
			}
			report := versionReport{Build: bake.BuildInfo(), Host: bake.DescribeHost(c.Context, c.String("kernel"))}
			if c.Bool("json") {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				return enc.Encode(report)
			}
			printVersion(c.App.Writer, report)
			return nil
		},
	}
}

// versionReport is `imgbake version --json`: the build, then the host.
type versionReport struct {
	bake.Build
	bake.Host
}

func printVersion(w io.Writer, r versionReport) {
	commit := r.Commit
	if commit == "" {
		commit = "unknown commit"
	}
	fmt.Fprintf(w, "imgbake %s (%s, %s, %s)\n", r.Version, commit, r.GoVersion, r.Platform)
	tool := func(name string, t bake.HostTool) {
		if !t.Found {
			fmt.Fprintf(w, "%-8s not found: %s\n", name+":", t.Error)
			return
		}
		fmt.Fprintf(w, "%-8s %s (%s)\n", name+":", t.Path, t.Version)
	}
	tool("qemu", r.QEMU)
	tool("kernel", r.Kernel)
	accel := r.KVM.Accel
	if r.KVM.Note != "" {
		accel += " (" + r.KVM.Note + ")"
	}
	fmt.Fprintf(w, "%-8s %s\n", "accel:", accel)
}
