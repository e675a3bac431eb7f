package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/imgbake/imgbake/bake"
	"github.com/imgbake/imgbake/internal/clidocs"
)

func resizeCommand() *cli.Command {
	return &cli.Command{
		Name:        "resize",
		Usage:       "grow a disk image and the partition, LVM volume and filesystem that hold its root",
		Description: clidocs.Text("resize"),
		Flags: append(append(diskFlags(),
			&cli.StringFlag{Name: "size", Usage: "new disk `SIZE`: 20G, or +10G for that much more (K, M, G, T: powers of 1024)"},
			&cli.StringFlag{Name: "expand", Usage: "grow this `PARTITION` (a device of the appliance, e.g. /dev/vda2) instead of the root's"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write the grown image to a new `FILE` and leave the input untouched"},
			&cli.BoolFlag{Name: "in-place", Usage: "grow the image itself with no overlay (a failure leaves the disk larger but the rest unchanged)"},
			writeROFlag(),
		), outputFlags()...),
		Action: func(c *cli.Context) error {
			stdio := stdioOf(c)
			if c.NArg() != 0 {
				return usageErr("resize: no arguments expected (got %q): the image is -a FILE, the size --size", c.Args().First())
			}
			if err := rejectRO(c); err != nil {
				return err
			}
			if c.String("size") == "" {
				return usageErr("resize: --size is required (e.g. --size +2G)")
			}
			o, err := outputOptions(c, bake.Options{Output: c.String("output"), InPlace: c.Bool("in-place")})
			if err != nil {
				return err
			}
			disks, o, err := diskOptions(c, stdio, o)
			if err != nil {
				return err
			}
			res, err := bake.GrowDisk(c.Context, disks, o, c.String("size"), c.String("expand"), liveOutput(c, stdio))
			if err != nil {
				return err
			}
			grown := res.Filesystem
			if res.Partition != "" && res.Partition != res.Filesystem {
				grown = res.Partition + " → " + res.Filesystem
			}
			fmt.Fprintf(stdio.Err, "imgbake: grew %s (%s on %s) from %s to %s\n", grown, res.Type, res.Mountpoint,
				bake.HumanSize(int64(res.Before)), bake.HumanSize(int64(res.After)))
			return nil
		},
	}
}
