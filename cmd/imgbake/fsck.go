package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/imgbake/imgbake/bake"
	"github.com/imgbake/imgbake/fsops"
)

func fsckCommand() *cli.Command {
	return &cli.Command{
		Name:      "fsck",
		Usage:     "check (and with --repair, repair) the filesystems of a disk image, unmounted",
		ArgsUsage: "[DEVICE...]",
		Description: "Uses the appliance's own e2fsck, xfs_repair, fsck.fat and btrfs check (taken from the host), so it works\n" +
			"whatever state the image's tools are in. Nothing is mounted. Without DEVICE every ext2/3/4, xfs, vfat and btrfs filesystem\n" +
			"is checked; DEVICE is an appliance device name as `imgbake inspect` shows it (vda3 or /dev/vda3), an LVM\n" +
			"volume as vg0/root or /dev/mapper/vg0-root.\n" +
			"Without --repair the disks are attached read-only and only checked (e2fsck -n, xfs_repair -n, fsck.fat -n,\n" +
			"btrfs check --readonly). With --repair: e2fsck -f -y; xfs_repair (a dirty log is first replayed by mounting\n" +
			"the filesystem); fsck.fat -a; btrfs check --repair, only when errors were found (it waits 10 s first);\n" +
			"the image is written only if something was repaired.\n\n" +
			"Exit status: 0 every filesystem is clean or was repaired, 1 errors were found (or remain), 2 bad usage\n" +
			"(e.g. no such device), 3 image or appliance error.\n\n" +
			example("imgbake fsck -a disk.qcow2", "imgbake fsck --repair -a disk.qcow2 vda3"),
		Flags: append(diskFlags(),
			&cli.BoolFlag{Name: "repair", Usage: "repair what the checkers find"},
			&cli.BoolFlag{Name: "ro", Usage: "check only, disks attached read-only (the default without --repair)"},
		),
		Action: func(c *cli.Context) error {
			stdio := stdioOf(c)
			repair := c.Bool("repair")
			if repair && c.Bool("ro") {
				return usageErr("fsck: --repair writes to the image and cannot run with --ro")
			}
			if len(c.StringSlice("mount")) > 0 {
				return usageErr("fsck: -m does not apply: fsck mounts nothing")
			}
			var want []string
			for _, a := range c.Args().Slice() {
				d, err := fsops.DeviceArg(a)
				if err != nil {
					return usageErr("fsck: %v", err)
				}
				want = append(want, d)
			}
			ctx := c.Context
			op, err := openImage(ctx, c, stdio, bake.Options{ReadOnly: !repair, Rescue: true, NoMount: true})
			if err != nil {
				return err
			}
			targets, err := fsops.FsckTargets(op.Mounts().Filesystems, want)
			if err != nil {
				op.Abort()
				if errors.Is(err, fsops.ErrNoDevice) {
					return usageErr("fsck: %v", err)
				}
				return withCode(ExitStepFailed, fmt.Errorf("fsck: %w", err))
			}
			var results []fsops.FsckResult
			for _, f := range targets {
				mode := "checking"
				if repair {
					mode = "checking and repairing"
				}
				if fsops.Checkable(f.Type) {
					fmt.Fprintf(stdio.Out, "== %s (%s%s): %s\n", f.Device, f.Type, fsops.FilesystemIdent(f), mode)
				}
				out := &indentWriter{w: stdio.Out, prefix: "   "}
				r, err := fsops.Fsck(ctx, op.Session(), f, fsops.FsckOptions{Repair: repair, Output: out})
				out.flush()
				if err != nil {
					op.Abort()
					return err
				}
				results = append(results, r)
				line := fmt.Sprintf("-> %s: %s", f.Device, r.Status)
				if len(r.Runs) > 0 {
					line += fmt.Sprintf(" (%s rc %d)", r.Tool, r.RC)
				}
				if r.Note != "" {
					line += ": " + r.Note
				}
				fmt.Fprintln(stdio.Out, line)
			}
			summary, commit, bad := fsops.SummarizeFsck(results, repair)
			if err := op.Finish(ctx, commit); err != nil {
				return err
			}
			fmt.Fprintln(stdio.Out, summary)
			if bad {
				return withCode(ExitStepFailed, errReported)
			}
			return nil
		},
	}
}

// indentWriter prefixes every line written through it.
type indentWriter struct {
	w      io.Writer
	prefix string
	buf    []byte
}

func (iw *indentWriter) Write(p []byte) (int, error) {
	iw.buf = append(iw.buf, p...)
	for {
		i := strings.IndexByte(string(iw.buf), '\n')
		if i < 0 {
			break
		}
		fmt.Fprintf(iw.w, "%s%s\n", iw.prefix, strings.TrimRight(string(iw.buf[:i]), "\r"))
		iw.buf = iw.buf[i+1:]
	}
	return len(p), nil
}

func (iw *indentWriter) flush() {
	if len(iw.buf) > 0 {
		fmt.Fprintf(iw.w, "%s%s\n", iw.prefix, string(iw.buf))
		iw.buf = nil
	}
}
