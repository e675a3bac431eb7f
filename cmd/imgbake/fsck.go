package main

import (
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/imgbake/imgbake/appliance/proto"
	"github.com/imgbake/imgbake/bake"
	"github.com/imgbake/imgbake/fsops"
)

func fsckCommand() *cli.Command {
	return &cli.Command{
		Name:      "fsck",
		Usage:     "check (and with --repair, repair) the filesystems of a disk image, unmounted",
		ArgsUsage: "[DEVICE...]",
		Description: "Uses the appliance's own e2fsck, xfs_repair and fsck.fat (taken from the host), so it works whatever\n" +
			"state the image's tools are in. Nothing is mounted. Without DEVICE every ext2/3/4, xfs and vfat filesystem\n" +
			"is checked; DEVICE is an appliance device name as `imgbake inspect` shows it (vda3 or /dev/vda3), an LVM\n" +
			"volume as vg0/root or /dev/mapper/vg0-root.\n" +
			"Without --repair the disks are attached read-only and only checked (e2fsck -n, xfs_repair -n, fsck.fat -n).\n" +
			"With --repair: e2fsck -f -y; xfs_repair (a dirty log is first replayed by mounting the filesystem);\n" +
			"fsck.fat -a; the image is written only if something was repaired.\n\n" +
			"Exit status: 0 every filesystem is clean or was repaired, 1 errors were found (or remain), 2 bad usage\n" +
			"(e.g. no such device), 3 image or appliance error.",
		Flags: append(diskFlags(),
			&cli.BoolFlag{Name: "repair", Usage: "repair what the checkers find"},
			&cli.BoolFlag{Name: "ro", Usage: "check only, disks attached read-only (the default without --repair)"},
		),
		Action: func(c *cli.Context) error {
			stdio := stdioOf(c)
			if err := noFlagsAfterArgs(c); err != nil {
				return err
			}
			repair := c.Bool("repair")
			if repair && c.Bool("ro") {
				return usageErr("fsck: --repair writes to the image and cannot run with --ro")
			}
			if len(c.StringSlice("mount")) > 0 {
				return usageErr("fsck: -m does not apply: fsck mounts nothing")
			}
			var want []string
			for _, a := range c.Args().Slice() {
				d, err := fsckDeviceArg(a)
				if err != nil {
					return err
				}
				want = append(want, d)
			}
			ctx := c.Context
			op, err := openImage(ctx, c, stdio, bake.Options{ReadOnly: !repair, Rescue: true, NoMount: true})
			if err != nil {
				return err
			}
			targets, err := fsckTargets(op.Mounts().Filesystems, want)
			if err != nil {
				op.Abort()
				return err
			}
			var results []fsops.FsckResult
			for _, f := range targets {
				mode := "checking"
				if repair {
					mode = "checking and repairing"
				}
				if fsops.Checkable(f.Type) {
					fmt.Fprintf(stdio.Out, "== %s (%s%s): %s\n", f.Device, f.Type, fsIdent(f), mode)
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
			commit := false
			bad := 0
			counts := map[string]int{}
			for _, r := range results {
				counts[r.Status]++
				switch r.Status {
				case fsops.FsckRepaired, fsops.FsckErrorsRemain:
					commit = repair
				}
				switch r.Status {
				case fsops.FsckErrorsFound, fsops.FsckErrorsRemain, fsops.FsckFailed:
					bad++
				}
			}
			if err := op.Finish(ctx, commit); err != nil {
				return err
			}
			var parts []string
			for _, s := range []string{fsops.FsckClean, fsops.FsckRepaired, fsops.FsckErrorsFound, fsops.FsckErrorsRemain, fsops.FsckFailed, fsops.FsckSkipped} {
				if counts[s] > 0 {
					parts = append(parts, fmt.Sprintf("%d %s", counts[s], s))
				}
			}
			summary := "fsck: " + strings.Join(parts, ", ")
			switch {
			case commit:
				summary += "; the repairs were written to the image"
			case repair:
				summary += "; nothing was repaired, the image is unchanged"
			case counts[fsops.FsckErrorsFound] > 0:
				summary += "; run with --repair to fix"
			}
			fmt.Fprintln(stdio.Out, summary)
			if bad > 0 {
				return withCode(ExitStepFailed, errReported)
			}
			return nil
		},
	}
}

var (
	deviceNameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)
	lvmNameRE    = regexp.MustCompile(`^[A-Za-z0-9+_.][A-Za-z0-9+_.-]{0,126}$`)
)

// fsckDeviceArg checks a DEVICE argument: an appliance device name, with or
// without /dev/, or an LVM volume as mapper/VG-LV or VG/LV.
func fsckDeviceArg(a string) (string, error) {
	name := strings.TrimPrefix(a, "/dev/")
	if m, ok := strings.CutPrefix(name, "mapper/"); ok && lvmName(m) {
		return "/dev/mapper/" + m, nil
	}
	if vg, lv, ok := strings.Cut(name, "/"); ok && lvmName(vg) && lvmName(lv) {
		// LVM's device-mapper name: dashes in either part doubled.
		return "/dev/mapper/" + strings.ReplaceAll(vg, "-", "--") + "-" + strings.ReplaceAll(lv, "-", "--"), nil
	}
	if !deviceNameRE.MatchString(name) {
		return "", usageErr("fsck: %q is not a device name (e.g. vda3, /dev/vda3 or vg0/root; `imgbake inspect` lists them)", a)
	}
	return "/dev/" + name, nil
}

// lvmName reports whether s may name an LVM volume group or volume.
func lvmName(s string) bool {
	return lvmNameRE.MatchString(s) && s != "." && s != ".."
}

// fsckTargets picks the filesystems to check: the devices asked for, or
// every checkable one. An unknown device is a usage error.
func fsckTargets(fss []proto.Filesystem, want []string) ([]proto.Filesystem, error) {
	var names []string
	byDev := map[string]proto.Filesystem{}
	for _, f := range fss {
		byDev[f.Device] = f
		desc := f.Device
		if f.Type != "" {
			desc += " (" + f.Type + ")"
		}
		names = append(names, desc)
	}
	if len(want) > 0 {
		var out []proto.Filesystem
		for _, d := range want {
			f, ok := byDev[d]
			if !ok {
				return nil, usageErr("fsck: no device %s in the image (devices: %s)", d, strings.Join(names, ", "))
			}
			out = append(out, f)
		}
		return out, nil
	}
	var out []proto.Filesystem
	for _, f := range fss {
		if fsops.Checkable(f.Type) || f.Type == "LVM2_member" || f.Type == "btrfs" {
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		return nil, withCode(ExitStepFailed, fmt.Errorf("fsck: no filesystem to check (devices: %s)", strings.Join(names, ", ")))
	}
	return out, nil
}

func fsIdent(f proto.Filesystem) string {
	switch {
	case f.Label != "":
		return ", LABEL=" + f.Label
	case f.UUID != "":
		return ", UUID=" + f.UUID
	}
	return ""
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
