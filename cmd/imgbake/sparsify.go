package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/imgbake/imgbake/bake"
	"github.com/imgbake/imgbake/internal/clidocs"
)

func sparsifyCommand() *cli.Command {
	return &cli.Command{
		Name:        "sparsify",
		Usage:       "make a disk image hold only its used blocks: trim free space, optionally compress (as virt-sparsify)",
		Description: clidocs.Text("sparsify"),
		Flags: append(append(diskFlags(),
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write the sparse image to a new `FILE` and leave the input untouched"},
			&cli.BoolFlag{Name: "in-place", Usage: "discard the free space in the image itself (no copy; the file's size stays, its holes grow)"},
			writeROFlag(),
		), outputFlags()...),
		Action: func(c *cli.Context) error {
			stdio := stdioOf(c)
			if c.NArg() != 0 {
				return usageErr("sparsify: no arguments expected (got %q): the image is -a FILE, the result -o FILE", c.Args().First())
			}
			if err := rejectRO(c); err != nil {
				return err
			}
			out, inPlace := c.String("output"), c.Bool("in-place")
			switch {
			case out == "" && !inPlace:
				return usageErr("sparsify: give -o OUTPUT (a new image) or --in-place")
			case out != "" && inPlace:
				return usageErr("sparsify: -o and --in-place exclude each other")
			}
			o, err := outputOptions(c, bake.Options{Output: out, InPlace: inPlace, Sparsify: true})
			if err != nil {
				return err
			}
			img, err := openImage(c.Context, c, stdio, o)
			if err != nil {
				return err
			}
			if err := img.Commit(c.Context); err != nil {
				return err
			}
			for _, fs := range img.Trimmed() {
				fmt.Fprintf(stdio.Err, "imgbake: %s (%s): %s of free space %s\n", fs.Mountpoint, fs.Type, bake.HumanSize(int64(fs.Bytes)), trimVerb(fs.Method))
			}
			written := out
			if inPlace {
				written = c.StringSlice("add")[0]
			}
			if n, err := bake.AllocatedSize(written); err == nil {
				fmt.Fprintf(stdio.Err, "imgbake: %s now takes %s on disk\n", written, bake.HumanSize(n))
			}
			return nil
		},
	}
}

func trimVerb(method string) string {
	if method == bake.TrimZeroed {
		return "zeroed (this filesystem cannot discard)"
	}
	return "discarded"
}
