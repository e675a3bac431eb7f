package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/imgbake/imgbake/bake"
	"github.com/imgbake/imgbake/internal/clidocs"
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
					m := app.Manifest
					w := c.App.Writer
					fmt.Fprintf(w, "key:        %s\n", app.Key)
					fmt.Fprintf(w, "kernel:     %s (%s)\n", app.Kernel.Image, app.Kernel.Version)
					fmt.Fprintf(w, "initramfs:  %s (%s)\n", app.Initramfs, bake.HumanSize(app.Size))
					fmt.Fprintf(w, "agent:      sha256 %s (version %s)\n", m.AgentSHA256[:16], bake.Version)
					fmt.Fprintf(w, "modules:    %d\n", len(m.Modules))
					for _, mod := range m.Modules {
						fmt.Fprintf(w, "            %s\n", mod)
					}
					fmt.Fprintf(w, "rescue:     %s (%s: the initramfs plus %s of rescue tools, for fsck and the rescue shell)\n",
						app.RescueInitramfs, bake.HumanSize(app.RescueSize), bake.HumanSize(m.Rescue.Bytes))
					fmt.Fprintf(w, "            tools %s; %d libraries, %d busybox applets\n", strings.Join(m.Rescue.Tools, ", "), len(m.Rescue.Libs), m.Rescue.Applets)
					if len(m.Rescue.Missing) > 0 {
						fmt.Fprintf(w, "            not on this host (install to include): %s\n", strings.Join(m.Rescue.Missing, ", "))
					}
					accel := app.Accel
					if app.AccelNote != "" {
						accel += " (" + app.AccelNote + ")"
					}
					fmt.Fprintf(w, "accel:      %s\n", accel)
					if app.Snapshot != "" {
						fmt.Fprintf(w, "snapshot:   %s (%s, warm start)\n", app.Snapshot, bake.HumanSize(app.SnapshotSize))
					} else {
						fmt.Fprintf(w, "snapshot:   none yet for %d MiB (saved on the next start; warm start restores it)\n", c.Int("memory"))
					}
					fmt.Fprintf(w, "built:      %s\n", m.Created.Format("2006-01-02 15:04:05 MST"))
					return nil
				},
			},
		},
	}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
