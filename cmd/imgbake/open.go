package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/imgbake/imgbake/appliance"
	"github.com/imgbake/imgbake/appliance/proto"
	"github.com/imgbake/imgbake/image"
)

// Flags shared by every command that opens an image.
func diskFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{Name: "add", Aliases: []string{"a"}, Usage: "disk image `FILE` (repeat for several disks)"},
		&cli.StringFlag{Name: "format", Usage: "disk format: raw or qcow2 (default: detected; applies to every -a)"},
		&cli.StringSliceFlag{Name: "mount", Aliases: []string{"m"}, Usage: "mount `DEVICE[:MOUNTPOINT]` instead of detecting (like guestfish -m)"},
		&cli.BoolFlag{Name: "allow-backing", Usage: "accept a qcow2 image that names a backing file"},
		&cli.StringFlag{Name: "kernel", Usage: "appliance kernel `VMLINUZ` (default: newest /boot/vmlinuz-*-cloud-amd64; env IMGBAKE_KERNEL)"},
		&cli.IntFlag{Name: "memory", Value: 512, Usage: "appliance memory in `MiB`"},
		&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "print timings and live command output"},
		&cli.BoolFlag{Name: "cold", Usage: "boot the appliance instead of restoring the saved one (env IMGBAKE_COLD=1)"},
	}
}

// openOptions say how a command wants its images.
type openOptions struct {
	readOnly bool   // attach read-only, mount read-only (inspect)
	inPlace  bool   // write directly to the image, no overlay
	output   string // write the result to a new image instead of the input
	network  bool   // user-mode networking for package steps
	rescue   bool   // boot the initramfs that carries the rescue tools (fsck, rescue shell)
	noMount  bool   // probe the devices but mount nothing (fsck works on unmounted filesystems)
}

// opened is an image (or several) attached to one running appliance.
type opened struct {
	sess     *appliance.Session
	mount    *proto.MountResult
	disks    []diskState
	runDir   string
	locks    []*image.Lock
	verbosef func(string, ...any)
	opts     openOptions
	started  time.Time
	timings  phaseTimings
	boot     appliance.Timings // kept after the session is closed
}

// phaseTimings is where a command's wall time went, for --timings.
type phaseTimings struct {
	build, mount, steps, shutdown, commit time.Duration
}

type diskState struct {
	path    string
	format  string
	overlay *image.Overlay
}

func verboseFunc(c *cli.Context, w io.Writer) func(string, ...any) {
	if !c.Bool("verbose") {
		return func(string, ...any) {}
	}
	start := time.Now()
	return func(format string, args ...any) {
		fmt.Fprintf(w, "[%6.2fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
}

func parseMounts(specs []string) ([]proto.MountSpec, error) {
	var out []proto.MountSpec
	for _, s := range specs {
		dev, mp, _ := strings.Cut(s, ":")
		if dev == "" {
			return nil, usageErr("-m %q: expected DEVICE[:MOUNTPOINT]", s)
		}
		if mp != "" && !strings.HasPrefix(mp, "/") {
			return nil, usageErr("-m %q: mountpoint must be absolute", s)
		}
		out = append(out, proto.MountSpec{Device: dev, Mountpoint: mp})
	}
	return out, nil
}

// checkDisks validates the disk flags without side effects, so bad usage
// is reported before anything is locked or booted.
func checkDisks(c *cli.Context) ([]string, error) {
	disks := c.StringSlice("add")
	if len(disks) == 0 {
		return nil, usageErr("no disk image given: use -a FILE")
	}
	if f := c.String("format"); f != "" && f != "raw" && f != "qcow2" {
		return nil, usageErr("--format %q: use raw or qcow2", f)
	}
	return disks, nil
}

// openImages resolves, locks and attaches the disks, boots one appliance
// and mounts the image's filesystems. On error everything is undone.
func openImages(ctx context.Context, c *cli.Context, stdio Stdio, o openOptions) (_ *opened, err error) {
	disks, err := checkDisks(c)
	if err != nil {
		return nil, err
	}
	mounts, err := parseMounts(c.StringSlice("mount"))
	if err != nil {
		return nil, err
	}
	op := &opened{verbosef: verboseFunc(c, stdio.Err), opts: o, started: time.Now()}
	for _, dir := range appliance.CleanStale() {
		op.verbosef("removed %s, left by a run that was killed", dir)
	}
	defer func() {
		if err != nil {
			op.abort()
		}
	}()
	for _, d := range disks {
		h, err := image.Resolve(d, c.String("format"), c.Bool("allow-backing"))
		if err != nil {
			return nil, err
		}
		if err := checkAccess(d, o.readOnly || o.output != ""); err != nil {
			return nil, err
		}
		lock, err := image.Acquire(d)
		if err != nil {
			return nil, err
		}
		op.locks = append(op.locks, lock)
		if err := resumeCommit(ctx, stdio, d, o.readOnly); err != nil {
			return nil, err
		}
		op.disks = append(op.disks, diskState{path: d, format: h.Format})
	}
	t0 := time.Now()
	app, err := appliance.Build(appliance.BuildOptions{Kernel: c.String("kernel")})
	if err != nil {
		return nil, err
	}
	op.timings.build = time.Since(t0)
	if app.Built {
		op.verbosef("built appliance %s (%s initramfs, %d modules) in %s", app.Key, humanSize(app.Size), app.Modules, time.Since(t0).Round(time.Millisecond))
	}
	if o.rescue {
		app = app.WithRescueTools()
		op.verbosef("with rescue tools (%s initramfs)", humanSize(app.Size))
	}
	opts := []appliance.Option{appliance.WithMemory(c.Int("memory")), appliance.WithVerbose(op.verbosef), appliance.WithNetwork(o.network)}
	if c.Bool("cold") {
		opts = append(opts, appliance.WithWarm(false))
	}
	if !o.readOnly && !o.inPlace {
		if op.runDir, err = appliance.PrivateDir("run"); err != nil {
			return nil, err
		}
	}
	for i := range op.disks {
		d := &op.disks[i]
		switch {
		case o.readOnly:
			opts = append(opts, appliance.WithDisk(d.path, d.format, true))
		case o.inPlace:
			opts = append(opts, appliance.WithDisk(d.path, d.format, false))
		default:
			ov, err := image.NewOverlay(ctx, op.runDir, d.path, d.format)
			if err != nil {
				return nil, err
			}
			d.overlay = ov
			opts = append(opts, appliance.WithDisk(ov.Path, "qcow2", false))
		}
	}
	if o.inPlace {
		fmt.Fprintln(stdio.Err, "imgbake: --in-place: writing directly to the image; a failed run leaves it partly changed")
	}
	sess, err := appliance.Start(ctx, app, opts...)
	if err != nil {
		return nil, err
	}
	op.sess = sess
	op.boot = sess.Timings
	t1 := time.Now()
	if o.noMount {
		fss, err := sess.Probe(ctx)
		if err != nil {
			return nil, withCode(ExitImage, fmt.Errorf("%s: probing devices: %w", strings.Join(disks, ", "), err))
		}
		op.mount = &proto.MountResult{Filesystems: fss}
		op.verbosef("found %d device(s), mounted nothing", len(fss))
		return op, nil
	}
	disposable := !o.readOnly && !o.inPlace // every disk is an overlay
	mr, err := sess.Mount(ctx, proto.MountArgs{ReadOnly: o.readOnly, Disposable: disposable, Mounts: mounts})
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, withCode(ExitImage, fmt.Errorf("%s: %w", strings.Join(disks, ", "), err))
	}
	op.mount = mr
	op.timings.mount = time.Since(t1)
	op.verbosef("mounted %d filesystem(s) in %s (root %s)", len(mr.Mounts), time.Since(t1).Round(time.Millisecond), mr.Root)
	for _, w := range mr.Warnings {
		fmt.Fprintf(stdio.Err, "imgbake: warning: %s\n", w)
	}
	return op, nil
}

// resumeCommit finishes a commit into disk that an earlier, killed run
// left half done (the lock is held, so that run is gone).
func resumeCommit(ctx context.Context, stdio Stdio, disk string, readOnly bool) error {
	pc, err := image.Pending(disk)
	if err != nil || pc == nil {
		return err
	}
	if readOnly {
		return withCode(ExitImage, fmt.Errorf("%w at %s (pid %d): the image may be inconsistent; `imgbake run` on it completes the commit first",
			image.ErrInterruptedCommit, pc.Started.Local().Format(time.DateTime), pc.PID))
	}
	fmt.Fprintf(stdio.Err, "imgbake: warning: a run (pid %d) was interrupted while committing into %s at %s; completing that commit from its overlay\n",
		pc.PID, disk, pc.Started.Local().Format(time.DateTime))
	if err := pc.Resume(context.WithoutCancel(ctx)); err != nil {
		return withCode(ExitImage, err)
	}
	fmt.Fprintf(stdio.Err, "imgbake: the interrupted commit into %s is complete\n", disk)
	return nil
}

func checkAccess(path string, readOnly bool) error {
	flag := os.O_RDWR
	if readOnly {
		flag = os.O_RDONLY
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			return fmt.Errorf("%w: %s is not %s", image.ErrFormat, path, map[bool]string{true: "readable", false: "writable"}[readOnly])
		}
		return fmt.Errorf("%w: %s: %v", image.ErrNotFound, path, err)
	}
	return f.Close()
}

// finish shuts the appliance down cleanly and, if commit, writes the
// overlay back (or exports it to --output). Without commit the overlay is
// discarded and the input stays byte-identical.
func (op *opened) finish(ctx context.Context, commit bool) error {
	defer op.release()
	if op.sess != nil {
		var err error
		if commit || op.opts.inPlace {
			// In place, a clean unmount matters even after a failure.
			t := time.Now()
			err = op.sess.Close(context.WithoutCancel(ctx))
			op.timings.shutdown = time.Since(t)
		} else {
			op.sess.Kill()
		}
		op.sess = nil
		if err != nil {
			return withCode(ExitImage, err)
		}
	}
	if !commit || op.opts.readOnly || op.opts.inPlace {
		return nil
	}
	for _, d := range op.disks {
		if d.overlay == nil {
			continue
		}
		t := time.Now()
		if op.opts.output != "" {
			if err := d.overlay.Export(context.WithoutCancel(ctx), op.opts.output, outputFormat(op.opts.output, d.format)); err != nil {
				return withCode(ExitImage, err)
			}
			op.timings.commit += time.Since(t)
			op.verbosef("wrote %s in %s", op.opts.output, time.Since(t).Round(time.Millisecond))
			continue
		}
		if err := d.overlay.CommitJournaled(context.WithoutCancel(ctx)); err != nil {
			return withCode(ExitImage, fmt.Errorf("committing changes into %s: %w", d.path, err))
		}
		op.timings.commit += time.Since(t)
		op.verbosef("committed changes into %s in %s", d.path, time.Since(t).Round(time.Millisecond))
	}
	return nil
}

func outputFormat(path, inFormat string) string {
	if strings.HasSuffix(path, ".raw") || strings.HasSuffix(path, ".img") {
		return "raw"
	}
	return "qcow2"
}

// abort kills the appliance and drops everything.
func (op *opened) abort() {
	if op.sess != nil {
		op.sess.Kill()
		op.sess = nil
	}
	op.release()
}

func (op *opened) release() {
	if op.runDir != "" {
		os.RemoveAll(op.runDir)
		op.runDir = ""
	}
	for _, l := range op.locks {
		l.Release()
	}
	op.locks = nil
}

// printTimings writes the --timings breakdown: where the wall time of the
// command went, from process start to exit.
func (op *opened) printTimings(w io.Writer, total time.Duration) {
	t := op.boot
	ms := func(d time.Duration) string { return fmt.Sprintf("%8.0f ms", float64(d.Microseconds())/1000) }
	fmt.Fprintln(w, "timings:")
	fmt.Fprintf(w, "  appliance build/cache   %s\n", ms(op.timings.build))
	fmt.Fprintf(w, "  qemu start + connect    %s\n", ms(t.QEMUStarted))
	if t.Warm {
		fmt.Fprintf(w, "  restore + hot-plug      %s  (warm start from the saved appliance)\n", ms(t.QEMUStarted))
	} else {
		fmt.Fprintf(w, "  guest kernel → agent    %s  (guest uptime at ready; cold boot)\n", ms(t.GuestUptime))
	}
	fmt.Fprintf(w, "  agent ready             %s  (since qemu start)\n", ms(t.Ready))
	fmt.Fprintf(w, "  mount filesystems       %s\n", ms(op.timings.mount))
	fmt.Fprintf(w, "  steps                   %s\n", ms(op.timings.steps))
	fmt.Fprintf(w, "  shutdown                %s\n", ms(op.timings.shutdown))
	fmt.Fprintf(w, "  commit/export           %s\n", ms(op.timings.commit))
	fmt.Fprintf(w, "  total                   %s\n", ms(total))
}

func humanSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
