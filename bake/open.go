package bake

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/imgbake/imgbake/appliance"
	"github.com/imgbake/imgbake/appliance/proto"
	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/image"
	"github.com/imgbake/imgbake/recipes"
)

// Options say how to open the images and run the appliance. The zero value
// opens the disks writable through a private overlay, detects their format
// and mounts what the image's fstab says.
type Options struct {
	Format       string  `json:"format,omitempty"`        // "raw" or "qcow2" for every disk; "" detects it from the header
	AllowBacking bool    `json:"allow_backing,omitempty"` // accept a qcow2 that names a backing file
	Mounts       []Mount `json:"mounts,omitempty"`        // mount these instead of detecting (like guestfish -m)
	Kernel       string  `json:"kernel,omitempty"`        // appliance kernel; "" picks the host's (see appliance.Build)
	MemoryMiB    int     `json:"memory_mib,omitempty"`    // appliance memory; 0 means 512
	CPUs         int     `json:"cpus,omitempty"`          // appliance vCPUs; 0 means the appliance's default (2)
	Cold         bool    `json:"cold,omitempty"`          // boot instead of restoring the saved appliance

	ReadOnly bool   `json:"read_only,omitempty"` // attach and mount read-only
	InPlace  bool   `json:"in_place,omitempty"`  // write directly to the image, no overlay
	Output   string `json:"output,omitempty"`    // Commit exports to this new image instead of the input
	Network  bool   `json:"network,omitempty"`   // user-mode networking for package steps
	Rescue   bool   `json:"rescue,omitempty"`    // the initramfs with the rescue tools (fsck, rescue shell)
	NoMount  bool   `json:"no_mount,omitempty"`  // probe the devices but mount nothing (fsck)

	// Keys open LUKS volumes (--key); KeyPrompt, when set (stdin is a
	// terminal), is asked for the passphrase of each volume they do not
	// open. Neither is ever written anywhere.
	Keys      []Key                                           `json:"-"`
	KeyPrompt func(dev, uuid, problem string) ([]byte, error) `json:"-"`

	// How an Output is written (see image.Output), and what is written
	// beside the image.
	OutputFormat  string `json:"output_format,omitempty"`  // "" takes it from Output's extension
	OutputOptions string `json:"output_options,omitempty"` // qemu-img -o options, e.g. subformat=streamOptimized
	Compress      string `json:"compress,omitempty"`       // "zlib" or "zstd": compressed qcow2 clusters
	Sparsify      bool   `json:"sparsify,omitempty"`       // trim free space before the commit (an Output always is)
	Checksum      bool   `json:"checksum,omitempty"`       // write IMAGE.sha256 (sha256sum format) beside the written image
	Manifest      string `json:"manifest,omitempty"`       // RunRecipe writes a JSON manifest of the run to this file
	// DiskSize grows the first disk to this many bytes before the
	// appliance starts (its overlay, or the image itself in place);
	// GrowDisk then grows the partitions and filesystem into it.
	DiskSize int64 `json:"disk_size,omitempty"`

	// The step-layer cache (run only; one disk through an overlay).
	Cache    bool   `json:"cache,omitempty"`     // use it: skip the longest cached prefix, store new layers
	CacheDir string `json:"cache_dir,omitempty"` // where; "" is DefaultLayerCache
	Refresh  bool   `json:"refresh,omitempty"`   // ignore cached layers (and replace them)

	// Progress receives the progress of long phases (writing --output)
	// in percent; nil: none.
	Progress func(phase string, percent float64) `json:"-"`
	// Logf receives progress lines (-v); nil discards them.
	Logf func(format string, args ...any) `json:"-"`
	// Notices receives warnings and notices a user must see (stderr);
	// nil discards them.
	Notices io.Writer `json:"-"`
}

// Mount is a filesystem to mount by hand: a device of the appliance
// (/dev/vda2, vg0/root, ...) and where in the image, "/" when empty.
type Mount struct {
	Device     string `json:"device"`
	Mountpoint string `json:"mountpoint,omitempty"`
	Options    string `json:"options,omitempty"` // mount options, e.g. subvol=root
}

// ParseMount reads a -m argument, DEVICE[:MOUNTPOINT[:OPTIONS]] as
// guestfish spells it: -m /dev/vda2:/:subvol=root.
func ParseMount(spec string) (Mount, error) {
	dev, rest, _ := strings.Cut(spec, ":")
	mp, opts, _ := strings.Cut(rest, ":")
	if dev == "" {
		return Mount{}, Classify(ErrUsage, fmt.Errorf("-m %q: expected DEVICE[:MOUNTPOINT[:OPTIONS]]", spec))
	}
	if mp != "" && !strings.HasPrefix(mp, "/") {
		return Mount{}, Classify(ErrUsage, fmt.Errorf("-m %q: mountpoint must be absolute", spec))
	}
	if strings.ContainsAny(opts, "\x00\n ") {
		return Mount{}, Classify(ErrUsage, fmt.Errorf("-m %q: mount options are a comma-separated list without spaces", spec))
	}
	return Mount{Device: dev, Mountpoint: mp, Options: opts}, nil
}

// Check validates disks and options without side effects, so bad usage is
// reported before anything is locked or booted.
func Check(disks []string, o Options) error {
	if len(disks) == 0 {
		return Classify(ErrUsage, errors.New("no disk image given: use -a FILE"))
	}
	if o.Format != "" && o.Format != "raw" && o.Format != "qcow2" {
		return Classify(ErrUsage, fmt.Errorf("--format %q: use raw or qcow2", o.Format))
	}
	if o.InPlace && o.Output != "" {
		return Classify(ErrUsage, errors.New("--in-place and --output exclude each other"))
	}
	if o.Cache && (len(disks) != 1 || o.InPlace || o.ReadOnly) {
		return Classify(ErrUsage, errors.New("--cache needs exactly one -a disk and an overlay (not --in-place)"))
	}
	if o.Output != "" {
		if len(disks) != 1 {
			return Classify(ErrUsage, errors.New("--output needs exactly one -a disk"))
		}
		if _, err := os.Stat(o.Output); err == nil {
			return Classify(ErrUsage, fmt.Errorf("--output %s already exists", o.Output))
		}
	}
	if err := checkOutput(disks, o); err != nil {
		return Classify(ErrUsage, err)
	}
	return nil
}

// Image is one or more disk images attached to one running appliance,
// with their filesystems mounted: the transaction of a run. End it with
// Commit or Discard (or Abort on an error path).
type Image struct {
	sess    *appliance.Session
	ops     fsops.Session // what steps and commands use: sess, or a fake in tests
	mount   *proto.MountResult
	disks   []diskState
	names   string // the disks, for messages
	runDir  string
	locks   []*image.Lock
	logf    func(string, ...any)
	notices io.Writer
	opts    Options
	cache   *cachePlan // the step-layer cache of this run, or nil
	timings phaseTimings
	trimmed []TrimmedFS       // what the trim before the commit did
	boot    appliance.Timings // kept after the session is closed
}

// phaseTimings is where a command's wall time went, for --timings.
type phaseTimings struct {
	build, mount, steps, shutdown, commit time.Duration
}

type diskState struct {
	path    string
	format  string
	size    int64 // virtual size in bytes, as the header says
	overlay *image.Overlay
}

// Open resolves, locks and attaches the disks, boots one appliance and
// mounts the image's filesystems (or only probes them, with NoMount). On
// error everything is undone and nothing was changed.
func Open(ctx context.Context, disks []string, o Options) (*Image, error) {
	if o.Cache {
		return nil, Classify(ErrUsage, errors.New("the layer cache needs the recipe: use RunRecipe"))
	}
	return open(ctx, disks, o, nil)
}

// open is Open for the run of rec (nil for other commands). With the
// step-layer cache, once the disk is locked and any interrupted commit
// into it completed, it plans the run: the overlay then lives in the
// cache's run directory, over the layer the cached prefix ends at.
func open(ctx context.Context, disks []string, o Options, rec *recipes.Recipe) (_ *Image, err error) {
	if err := Check(disks, o); err != nil {
		return nil, err
	}
	img := &Image{logf: o.Logf, notices: o.Notices, opts: o, names: strings.Join(disks, ", ")}
	if img.logf == nil {
		img.logf = func(string, ...any) {}
	}
	if img.notices == nil {
		img.notices = io.Discard
	}
	for _, dir := range appliance.CleanStale() {
		img.logf("removed %s, left by a run that was killed", dir)
	}
	defer func() {
		if err != nil {
			img.Abort()
			err = classifyOpen(ctx, err)
		}
	}()
	for _, d := range disks {
		h, err := image.Resolve(d, o.Format, o.AllowBacking)
		if err != nil {
			return nil, err
		}
		if err := checkAccess(d, o.ReadOnly || o.Output != ""); err != nil {
			return nil, err
		}
		lock, err := image.Acquire(d)
		if err != nil {
			return nil, err
		}
		img.locks = append(img.locks, lock)
		if err := img.resumeCommit(ctx, d, o.ReadOnly); err != nil {
			return nil, err
		}
		img.disks = append(img.disks, diskState{path: d, format: h.Format, size: h.Size})
	}
	if o.DiskSize > 0 && o.DiskSize < img.disks[0].size {
		return nil, Classify(ErrUsage, fmt.Errorf("%s is %s: shrinking it to %s is refused (filesystems and partitions cannot shrink safely offline)",
			img.disks[0].path, HumanSize(img.disks[0].size), HumanSize(o.DiskSize)))
	}
	if o.Cache {
		store, err := OpenLayerCache(o.CacheDir)
		if err != nil {
			return nil, err
		}
		if img.cache, err = planCache(ctx, store, img.disks[0].path, img.disks[0].format, o.Refresh, rec); err != nil {
			return nil, err
		}
	}
	plan := img.cache
	t0 := time.Now()
	app, err := appliance.Build(appliance.BuildOptions{Kernel: o.Kernel})
	if err != nil {
		return nil, err
	}
	img.timings.build = time.Since(t0)
	if app.Built {
		img.logf("built appliance %s (%s initramfs, %d modules) in %s", app.Key, HumanSize(app.Size), app.Modules, time.Since(t0).Round(time.Millisecond))
	}
	if o.Rescue {
		app = app.WithRescueTools()
		img.logf("with rescue tools (%s initramfs)", HumanSize(app.Size))
	}
	memory := o.MemoryMiB
	if memory == 0 {
		memory = 512
	}
	opts := []appliance.Option{appliance.WithMemory(memory), appliance.WithVerbose(img.logf), appliance.WithNetwork(o.Network)}
	if o.CPUs > 0 {
		opts = append(opts, appliance.WithCPUs(o.CPUs))
	}
	if o.Cold {
		opts = append(opts, appliance.WithWarm(false))
	}
	switch {
	case plan != nil:
		if img.runDir, err = plan.store.RunDir(); err != nil {
			return nil, err
		}
	case !o.ReadOnly && !o.InPlace:
		if img.runDir, err = appliance.PrivateDir("run"); err != nil {
			return nil, err
		}
	}
	for i := range img.disks {
		d := &img.disks[i]
		switch {
		case o.ReadOnly:
			opts = append(opts, appliance.WithDisk(d.path, d.format, true))
		case o.InPlace:
			opts = append(opts, appliance.WithDisk(d.path, d.format, false))
		default:
			var ov *image.Overlay
			if plan != nil && plan.top() != "" {
				ov, err = image.NewLayeredOverlay(ctx, img.runDir, plan.store.LayerFile(plan.top()), d.path, d.format)
			} else {
				ov, err = image.NewOverlay(ctx, img.runDir, d.path, d.format)
			}
			if err != nil {
				return nil, err
			}
			d.overlay = ov
			opts = append(opts, appliance.WithDisk(ov.Path, "qcow2", false))
		}
		if i == 0 && o.DiskSize > d.size {
			if err := img.growDisk(ctx, d, o.DiskSize); err != nil {
				return nil, err
			}
		}
	}
	if o.InPlace {
		fmt.Fprintln(img.notices, "imgbake: --in-place: writing directly to the image; a failed run leaves it partly changed")
	}
	sess, err := appliance.Start(ctx, app, opts...)
	if err != nil {
		return nil, err
	}
	img.sess, img.ops = sess, sess
	img.boot = sess.Timings
	img.logf("appliance ready: qemu %s, agent ready %s (guest uptime %s)",
		sess.Timings.QEMUStarted.Round(time.Millisecond), sess.Timings.Ready.Round(time.Millisecond),
		sess.Timings.GuestUptime.Round(10*time.Millisecond))
	t1 := time.Now()
	vkeys, pr, err := unlockLUKS(ctx, sess, o, img.logf)
	if err != nil {
		if Class(err) == nil && ctx.Err() == nil {
			err = Classify(ErrImage, fmt.Errorf("%s: probing devices: %w", img.names, err))
		}
		return nil, err
	}
	defer proto.WipeVolumeKeys(vkeys)
	if o.NoMount {
		if pr == nil {
			if pr, err = sess.ProbeWith(ctx, proto.ProbeArgs{}); err != nil {
				return nil, Classify(ErrImage, fmt.Errorf("%s: probing devices: %w", img.names, err))
			}
		}
		fss := pr.Filesystems
		for _, v := range pr.LUKS {
			if v.Mapping == "" {
				fmt.Fprintf(img.notices, "imgbake: warning: LUKS volume %s (%s) is locked: %s\n", v.Device, v.UUID, v.Problem)
			}
		}
		img.mount = &proto.MountResult{Filesystems: fss, LUKS: pr.LUKS}
		img.logf("found %d device(s), mounted nothing", len(fss))
		return img, nil
	}
	specs := make([]proto.MountSpec, len(o.Mounts))
	for i, m := range o.Mounts {
		specs[i] = proto.MountSpec{Device: m.Device, Mountpoint: m.Mountpoint, Options: m.Options}
	}
	// Every disk is an overlay: ext4 may skip its journal. Not when the
	// free space is trimmed before the commit: FITRIM refuses an ext4
	// mounted without its journal.
	disposable := !o.ReadOnly && !o.InPlace && o.Output == "" && !o.Sparsify
	// A recipe's writes must land on the filesystems the image's fstab
	// names, not on the root's empty directories below their mountpoints.
	requireFstab := rec != nil && !o.ReadOnly
	mr, err := sess.Mount(ctx, proto.MountArgs{ReadOnly: o.ReadOnly, Disposable: disposable, Mounts: specs, RequireFstab: requireFstab, VolumeKeys: vkeys})
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, Classify(ErrImage, fmt.Errorf("%s: %w", img.names, err))
	}
	img.mount = mr
	if o.Network {
		// Every command of the run or session, not only package steps.
		if err := sess.NetworkForCommands(ctx); err != nil {
			return nil, Classify(ErrImage, fmt.Errorf("%s: %w", img.names, err))
		}
	}
	img.timings.mount = time.Since(t1)
	img.logf("mounted %d filesystem(s) in %s (root %s; agent: %s)", len(mr.Mounts), time.Since(t1).Round(time.Millisecond), mr.Root, mr.Phases)
	for _, w := range mr.Warnings {
		fmt.Fprintf(img.notices, "imgbake: warning: %s\n", w)
	}
	return img, nil
}

// classifyOpen marks an unclassified error from opening as an image error
// (a cancelled context is left alone: the caller's signal decides).
func classifyOpen(ctx context.Context, err error) error {
	if Class(err) != nil || ctx.Err() != nil || errors.Is(err, context.Canceled) {
		return err
	}
	return Classify(ErrImage, err)
}

// Session is the open image, for the operations of fsops.
func (img *Image) Session() fsops.Session { return img.ops }

// Done is closed when the appliance stops (dies, or is shut down).
func (img *Image) Done() <-chan struct{} { return img.sess.Done() }

// Mounts is what was mounted (or, with NoMount, the devices found).
func (img *Image) Mounts() *fsops.MountResult { return img.mount }

// Boot is how the appliance started (cold or warm, and how long it took).
func (img *Image) Boot() appliance.Timings { return img.boot }

// MountTime is how long mounting took.
func (img *Image) MountTime() time.Duration { return img.timings.mount }

// resumeCommit finishes a commit into disk that an earlier, killed run
// left half done (the lock is held, so that run is gone).
func (img *Image) resumeCommit(ctx context.Context, disk string, readOnly bool) error {
	pc, err := image.Pending(disk)
	if err != nil || pc == nil {
		return err
	}
	if readOnly {
		return Classify(ErrImage, fmt.Errorf("%w at %s (pid %d): the image may be inconsistent; `imgbake run` on it completes the commit first",
			image.ErrInterruptedCommit, pc.Started.Local().Format(time.DateTime), pc.PID))
	}
	fmt.Fprintf(img.notices, "imgbake: warning: a run (pid %d) was interrupted while committing into %s at %s; completing that commit from its overlay\n",
		pc.PID, disk, pc.Started.Local().Format(time.DateTime))
	if err := pc.Resume(context.WithoutCancel(ctx)); err != nil {
		return Classify(ErrImage, err)
	}
	fmt.Fprintf(img.notices, "imgbake: the interrupted commit into %s is complete\n", disk)
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

// Logf reports progress the way Options.Logf asked (-v).
func (img *Image) Logf(format string, args ...any) { img.logf(format, args...) }
