package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/imgbake/imgbake/bake"
	"github.com/imgbake/imgbake/internal/clidocs"
	"github.com/imgbake/imgbake/internal/report"
)

func applianceCommand() *cli.Command {
	kernel := &cli.StringFlag{Name: "kernel", Usage: "appliance kernel `VMLINUZ`"}
	return &cli.Command{
		Name:        "appliance",
		Usage:       "build or describe the cached appliance (kernel + initramfs with the agent)",
		Description: clidocs.Text("appliance"),
		Subcommands: []*cli.Command{
			{
				Name:        "build",
				Usage:       "build the appliance now (it is also built on first use)",
				Description: clidocs.Text("appliance build"),
				Flags:       []cli.Flag{kernel, &cli.BoolFlag{Name: "force", Usage: "rebuild even if cached"}},
				Action: func(c *cli.Context) error {
					app, err := bake.BuildAppliance(c.String("kernel"), c.Bool("force"))
					if err != nil {
						return err
					}
					state := "cached"
					if app.Built {
						state = "built"
					}
					fmt.Fprintf(c.App.Writer, "%s appliance %s: %s, %d modules\n", state, app.Key, app.Initramfs, app.Modules)
					return nil
				},
			},
			{
				Name:        "info",
				Usage:       "show the appliance that would be used",
				Description: clidocs.Text("appliance info"),
				Flags:       []cli.Flag{kernel, &cli.IntFlag{Name: "memory", Value: 512, Usage: "appliance memory in `MiB` (snapshots are per size)"}},
				Action: func(c *cli.Context) error {
					app, err := bake.DescribeAppliance(c.Context, c.String("kernel"), c.Int("memory"))
					if err != nil {
						return err
					}
					report.Appliance(c.App.Writer, app, c.Int("memory"))
					return nil
				},
			},
		},
	}
}
