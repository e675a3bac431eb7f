package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/imgbake/imgbake/bake"
)

// Flags shared by every command that opens an image.
func diskFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{Name: "add", Aliases: []string{"a"}, Usage: "disk image `FILE` (repeat for several disks)"},
		&cli.StringFlag{Name: "format", Usage: "disk format: raw or qcow2 (default: detected; applies to every -a)"},
		&cli.StringSliceFlag{Name: "mount", Aliases: []string{"m"}, Usage: "mount `DEVICE[:MOUNTPOINT[:OPTIONS]]` instead of detecting (like guestfish -m; e.g. /dev/vda2:/:subvol=root)"},
		&cli.BoolFlag{Name: "allow-backing", Usage: "accept a qcow2 image that names a backing file"},
		&cli.StringFlag{Name: "kernel", Usage: "appliance kernel `VMLINUZ` (default: newest /boot/vmlinuz-*-cloud-amd64; env IMGBAKE_KERNEL)"},
		&cli.IntFlag{Name: "memory", Value: 512, Usage: "appliance memory in `MiB`"},
		&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "print timings and live command output"},
		&cli.BoolFlag{Name: "cold", Usage: "boot the appliance instead of restoring the saved one (env IMGBAKE_COLD=1)"},
		keyFlag(),
	}
}

// diskOptions reads the disk flags into o, which holds what the command
// itself decided (read-only, rescue, ...), and checks them.
func diskOptions(c *cli.Context, stdio Stdio, o bake.Options) ([]string, bake.Options, error) {
	o, err := imageOptions(c, stdio, o)
	if err != nil {
		return nil, o, err
	}
	disks := c.StringSlice("add")
	return disks, o, bake.Check(disks, o)
}

// imageOptions reads the disk flags other than -a into o.
func imageOptions(c *cli.Context, stdio Stdio, o bake.Options) (bake.Options, error) {
	for _, s := range c.StringSlice("mount") {
		m, err := bake.ParseMount(s)
		if err != nil {
			return o, err
		}
		o.Mounts = append(o.Mounts, m)
	}
	o.Format, o.AllowBacking = c.String("format"), c.Bool("allow-backing")
	o.Kernel, o.MemoryMiB, o.Cold = c.String("kernel"), c.Int("memory"), c.Bool("cold")
	o.Logf, o.Notices = verboseFunc(c, stdio.Err), stdio.Err
	return keyOptions(c, stdio, o)
}

// openImage opens the disks named by the flags in one appliance.
func openImage(ctx context.Context, c *cli.Context, stdio Stdio, o bake.Options) (*bake.Image, error) {
	disks, o, err := diskOptions(c, stdio, o)
	if err != nil {
		return nil, err
	}
	return bake.Open(ctx, disks, o)
}

func verboseFunc(c *cli.Context, w io.Writer) func(string, ...any) {
	if !c.Bool("verbose") {
		return nil
	}
	start := time.Now()
	return func(format string, args ...any) {
		fmt.Fprintf(w, "[%6.2fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
}

// outputFlags say how an image is written out (with --output) and what is
// written beside it.
func outputFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "output-format", Usage: "`FORMAT` of --output: qcow2, raw, vmdk, vhdx, vhd or vdi (default: from its extension)"},
		&cli.StringFlag{Name: "output-options", Usage: "qemu-img `OPTIONS` for --output, e.g. subformat=streamOptimized (vmdk), subformat=fixed,force_size=on (vhd)"},
		&cli.BoolFlag{Name: "compress", Usage: "write --output as a compressed qcow2 (zlib; see --compression)"},
		&cli.StringFlag{Name: "compression", Usage: "with --compress: `TYPE` zlib (readable everywhere) or zstd (QEMU >= 5.1)"},
		&cli.BoolFlag{Name: "checksum", Usage: "write IMAGE.sha256 (sha256sum format) beside the written image"},
	}
}

// outputOptions reads outputFlags into o, and reports the writing of an
// output as JSON lines with --json, else as a bar on a terminal.
func outputOptions(c *cli.Context, o bake.Options) (bake.Options, error) {
	o.OutputFormat, o.OutputOptions, o.Checksum = c.String("output-format"), c.String("output-options"), c.Bool("checksum")
	stdio := stdioOf(c)
	switch {
	case c.Bool("json"):
		o.Progress = bake.NewJSONProgress(stdio.Out)
	case isTerminal(stdio.Err):
		o.Progress = bake.NewTerminalProgress(stdio.Err)
	}
	switch {
	case c.IsSet("compression") && !c.Bool("compress"):
		return o, usageErr("--compression needs --compress")
	case c.Bool("compress"):
		o.Compress = "zlib"
		if c.IsSet("compression") {
			o.Compress = c.String("compression")
		}
	}
	return o, nil
}
