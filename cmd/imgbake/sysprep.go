package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/imgbake/imgbake/bake"
	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/internal/clidocs"
	"github.com/imgbake/imgbake/internal/report"
)

func sysprepCommand() *cli.Command {
	return &cli.Command{
		Name:        "sysprep",
		Usage:       "remove what makes the image one machine (machine ID, SSH host keys, logs, caches, leases, histories) before cloning it",
		Description: clidocs.Text("sysprep"),
		Flags: append(diskFlags(),
			&cli.StringSliceFlag{Name: "operations", Aliases: []string{"operation"}, Usage: "the operations to run: a `LIST` such as defaults,-tmp-files (see --list-operations)"},
			&cli.StringSliceFlag{Name: "keep", Usage: "never touch paths matching `GLOB` (absolute; a kept directory keeps its contents); repeatable"},
			&cli.StringFlag{Name: "machine-id", Value: fsops.MachineIDEmpty, Usage: "what /etc/machine-id is left holding: `empty` or uninitialized (systemd's first-boot marker)"},
			&cli.BoolFlag{Name: "list-operations", Usage: "list the operations (* marks the default set) and exit"},
			writeROFlag(),
		),
		Action: func(c *cli.Context) error {
			stdio := stdioOf(c)
			if c.NArg() != 0 {
				return usageErr("sysprep takes no arguments (got %q); the disk goes with -a", c.Args().Slice())
			}
			if c.Bool("list-operations") {
				report.SysprepOperations(stdio.Out)
				return nil
			}
			if err := rejectRO(c); err != nil {
				return err
			}
			o := fsops.SysprepOptions{Keep: c.StringSlice("keep"), MachineID: c.String("machine-id")}
			if c.IsSet("operations") {
				ops, err := fsops.ParseSysprepOperations(commaList(c.StringSlice("operations")))
				if err != nil {
					return usageErr("--operations: %v", err)
				}
				o.Operations = ops
			}
			for _, g := range o.Keep {
				if err := fsops.CheckSysprepKeep(g); err != nil {
					return usageErr("--keep: %v", err)
				}
			}
			if err := fsops.CheckSysprepMachineID(o.MachineID); err != nil {
				return usageErr("--%v", err)
			}
			ctx := c.Context
			img, err := openImage(ctx, c, stdio, bake.Options{})
			if err != nil {
				return err
			}
			res, err := fsops.Sysprep(ctx, img.Session(), o)
			if err != nil {
				img.Abort()
				return opFailed(ctx, err)
			}
			if err := img.Finish(ctx, res.Changed); err != nil {
				return err
			}
			for _, d := range res.Done {
				fmt.Fprintf(stdio.Out, "%s: %s\n", d.Operation, d.Summary)
			}
			if res.Changed {
				fmt.Fprintln(stdio.Err, "imgbake: sysprep done; the image is written")
			} else {
				fmt.Fprintln(stdio.Err, "imgbake: nothing to clean; the image is unchanged")
			}
			return nil
		},
	}
}

// commaList splits each value of a repeatable flag at its commas, as
// virt-sysprep's --operations takes them (the app leaves slice values
// whole, so that -m OPTIONS and --var values may hold commas).
func commaList(values []string) []string {
	var out []string
	for _, v := range values {
		out = append(out, strings.Split(v, ",")...)
	}
	return out
}
