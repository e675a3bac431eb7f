package main

import (
	"encoding/json"

	"github.com/urfave/cli/v2"

	"github.com/imgbake/imgbake/bake"
	"github.com/imgbake/imgbake/internal/clidocs"
	"github.com/imgbake/imgbake/internal/report"
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
			v := report.VersionInfo{Build: bake.BuildInfo(), Host: bake.DescribeHost(c.Context, c.String("kernel"))}
			if c.Bool("json") {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				return enc.Encode(v)
			}
			report.WriteVersion(c.App.Writer, v)
			return nil
		},
	}
}
