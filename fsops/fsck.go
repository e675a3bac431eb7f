package fsops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"

	"github.com/imgbake/imgbake/appliance"
	"github.com/imgbake/imgbake/appliance/proto"
)

// Filesystem check outcomes.
const (
	FsckClean        = "clean"
	FsckErrorsFound  = "errors found"  // check only: run with repair to fix
	FsckRepaired     = "repaired"      // errors were found and fixed
	FsckErrorsRemain = "errors remain" // a repair did not fix everything
	FsckFailed       = "failed"        // the checker could not run or check
	FsckSkipped      = "skipped"       // nothing to check (swap, LVM member, unknown)
)

// FsckRun is one run of a checker.
type FsckRun struct {
	Argv   []string
	RC     int
	Output string // stdout and stderr, interleaved as they came
}

// FsckResult is what checking one filesystem found.
type FsckResult struct {
	Device string
	Type   string
	Tool   string
	Status string
	RC     int // exit status of the last run
	Runs   []FsckRun
	Note   string
}

// FsckOptions tune Fsck.
type FsckOptions struct {
	Repair bool
	// Output receives the checkers' output as it comes (may be nil).
	Output io.Writer
}

// fsckTool names the appliance's checker for a filesystem type.
func fsckTool(fstype string) string {
	switch fstype {
	case "ext2", "ext3", "ext4":
		return "e2fsck"
	case "xfs":
		return "xfs_repair"
	case "vfat":
		return "fsck.fat"
	case "btrfs":
		return "btrfs"
	}
	return ""
}

// Checkable reports whether Fsck can check a filesystem of this type.
func Checkable(fstype string) bool { return fsckTool(fstype) != "" }

// Fsck checks (and with Repair, repairs) one unmounted filesystem with the
// appliance's own rescue tools (the appliance must have been started with
// them, and the image must not be mounted). An error means the appliance
// failed; a checker that fails is reported in the result.
func Fsck(ctx context.Context, s Session, f proto.Filesystem, o FsckOptions) (FsckResult, error) {
	r := FsckResult{Device: f.Device, Type: f.Type, Tool: fsckTool(f.Type)}
	var err error
	switch r.Tool {
	case "e2fsck":
		err = fsckExt(ctx, s, &r, o)
	case "xfs_repair":
		err = fsckXFS(ctx, s, &r, o)
	case "fsck.fat":
		err = fsckFAT(ctx, s, &r, o)
	case "btrfs":
		err = fsckBtrfs(ctx, s, &r, o)
	default:
		r.Status = FsckSkipped
		switch f.Type {
		case "":
			r.Note = "no filesystem recognized"
		case "swap":
			r.Note = "swap space"
		case proto.TypeLVMPV:
			r.Note = "LVM physical volume (its active logical volumes are checked on their own)"
		default:
			r.Note = "the appliance has no checker for " + f.Type
		}
	}
	return r, err
}

// run executes a rescue tool in the appliance (not chrooted) on the device.
func (r *FsckResult) run(ctx context.Context, s Session, o FsckOptions, args ...string) (FsckRun, error) {
	argv := append([]string{path.Join(proto.RescueBinDir, r.Tool)}, args...)
	if o.Output != nil {
		fmt.Fprintf(o.Output, "$ %s %s\n", r.Tool, strings.Join(args, " "))
	}
	out := &capture{live: o.Output}
	res, err := s.Exec(ctx, proto.ExecArgs{Argv: argv, NoChroot: true, Env: appliance.RescueEnv()}, nil, out, out)
	run := FsckRun{Argv: append([]string{r.Tool}, args...), RC: res.RC, Output: out.String()}
	if err != nil {
		var re *appliance.RemoteError
		if errors.Is(err, fs.ErrNotExist) && errors.As(err, &re) {
			return run, fmt.Errorf("the appliance has no %s: install it on the host (%s) and imgbake adds it", r.Tool, toolPackage(r.Tool))
		}
		return run, err
	}
	r.Runs = append(r.Runs, run)
	r.RC = res.RC
	if res.Signal != "" {
		return run, fmt.Errorf("%s was killed by signal %s", r.Tool, res.Signal)
	}
	return run, nil
}

func toolPackage(tool string) string {
	switch tool {
	case "e2fsck":
		return "e2fsprogs"
	case "xfs_repair":
		return "xfsprogs"
	case "fsck.fat":
		return "dosfstools"
	case "btrfs":
		return "btrfs-progs"
	}
	return tool
}

// fsckExt runs e2fsck -f with -n (check) or -y (repair). e2fsck's exit
// status is a bit mask: 1 errors corrected, 2 corrected and the system
// should reboot, 4 errors left uncorrected, 8 operational error, 16 usage,
// 32 cancelled, 128 shared-library error.
func fsckExt(ctx context.Context, s Session, r *FsckResult, o FsckOptions) error {
	mode := "-n"
	if o.Repair {
		mode = "-y"
	}
	run, err := r.run(ctx, s, o, "-f", mode, r.Device)
	if err != nil {
		return fsckFailed(r, err)
	}
	switch rc := run.RC; {
	case rc&(8|16|32|128) != 0:
		r.Status = FsckFailed
	case rc&4 != 0 && o.Repair:
		r.Status = FsckErrorsRemain
	case rc&4 != 0:
		r.Status = FsckErrorsFound
	case rc&3 != 0:
		r.Status = FsckRepaired
	default:
		r.Status = FsckClean
	}
	return nil
}

// fsckFailed records a checker that could not run; only an appliance
// failure is returned as an error.
func fsckFailed(r *FsckResult, err error) error {
	var re *appliance.RemoteError
	if errors.As(err, &re) || strings.HasPrefix(err.Error(), "the appliance has no ") || strings.Contains(err.Error(), "killed by signal") {
		r.Status, r.Note = FsckFailed, err.Error()
		return nil
	}
	return err
}

// xfsDirtyLog tells whether xfs_repair stopped because the log needs a
// replay.
func xfsDirtyLog(out string) bool {
	return strings.Contains(out, "metadata changes in a log") || strings.Contains(out, "log which needs to be replayed")
}

// fsckXFS runs xfs_repair -n; with Repair and problems found, it repairs:
// a dirty log is replayed first by mounting and unmounting the filesystem
// (xfs_repair refuses to run otherwise), then xfs_repair runs and a last
// xfs_repair -n says whether it is clean now.
func fsckXFS(ctx context.Context, s Session, r *FsckResult, o FsckOptions) error {
	run, err := r.run(ctx, s, o, "-n", r.Device)
	if err != nil {
		return fsckFailed(r, err)
	}
	dirty := xfsDirtyLog(run.Output)
	switch {
	case run.RC == 0 && !dirty:
		r.Status = FsckClean
		return nil
	case run.RC > 2:
		r.Status = FsckFailed
		return nil
	case !o.Repair:
		r.Status = FsckErrorsFound
		if dirty {
			r.Note = "the log is dirty (an unclean shutdown): --repair replays it"
		}
		return nil
	}
	if dirty {
		if o.Output != nil {
			fmt.Fprintf(o.Output, "(replaying the dirty log: mounting %s and unmounting it)\n", r.Device)
		}
		if err := s.ReplayLog(ctx, r.Device, "xfs"); err != nil {
			if !isRemote(err) {
				return err
			}
			r.Note = fmt.Sprintf("replaying the log by mounting failed (%v); `xfs_repair -L` in `imgbake shell --rescue` discards it, losing the last changes", err)
		} else {
			r.Note = "replayed the dirty log by mounting the filesystem"
		}
	}
	run, err = r.run(ctx, s, o, r.Device)
	if err != nil {
		return fsckFailed(r, err)
	}
	if run.RC != 0 {
		r.Status = FsckErrorsRemain
		if run.RC > 2 || !xfsDirtyLog(run.Output) {
			r.Status = FsckFailed
		}
		return nil
	}
	return r.recheck(ctx, s, o)
}

// fsckFAT runs fsck.fat -n; with Repair and problems found, fsck.fat -a
// and a second fsck.fat -n to confirm. fsck.fat exits 1 when it found
// (recoverable) errors.
func fsckFAT(ctx context.Context, s Session, r *FsckResult, o FsckOptions) error {
	run, err := r.run(ctx, s, o, "-n", r.Device)
	if err != nil {
		return fsckFailed(r, err)
	}
	switch {
	case run.RC == 0:
		r.Status = FsckClean
		return nil
	case run.RC != 1:
		r.Status = FsckFailed
		return nil
	case !o.Repair:
		r.Status = FsckErrorsFound
		return nil
	}
	if _, err := r.run(ctx, s, o, "-a", "-w", r.Device); err != nil {
		return fsckFailed(r, err)
	}
	return r.recheck(ctx, s, o)
}

// btrfsCheckFailed tells whether btrfs check stopped before checking
// (no filesystem, an unreadable superblock or tree root): its exit status
// is 1 for that and for errors found alike.
func btrfsCheckFailed(out string) bool {
	for _, s := range []string{"cannot open file system", "No valid Btrfs found", "could not open ctree",
		"unable to open", "cannot check mounted device", "is currently mounted"} {
		if strings.Contains(out, s) {
			return true
		}
	}
	return false
}

// fsckBtrfs runs btrfs check --readonly; only with Repair and errors found
// does it run btrfs check --repair (which waits 10 seconds before it
// starts, as btrfs-progs insists), then --readonly again to confirm.
func fsckBtrfs(ctx context.Context, s Session, r *FsckResult, o FsckOptions) error {
	check := func() (FsckRun, error) { return r.run(ctx, s, o, "check", "--readonly", r.Device) }
	run, err := check()
	if err != nil {
		return fsckFailed(r, err)
	}
	switch {
	case run.RC == 0:
		r.Status = FsckClean
		return nil
	case btrfsCheckFailed(run.Output):
		r.Status = FsckFailed
		return nil
	case !o.Repair:
		r.Status = FsckErrorsFound
		return nil
	}
	if _, err := r.run(ctx, s, o, "check", "--repair", r.Device); err != nil {
		return fsckFailed(r, err)
	}
	if run, err = check(); err != nil {
		return fsckFailed(r, err)
	}
	r.Status = FsckRepaired
	if run.RC != 0 {
		r.Status = FsckErrorsRemain
	}
	return nil
}

// recheck runs the checker read-only (-n) after a repair: clean means
// repaired, anything else that errors remain.
func (r *FsckResult) recheck(ctx context.Context, s Session, o FsckOptions) error {
	run, err := r.run(ctx, s, o, "-n", r.Device)
	if err != nil {
		return fsckFailed(r, err)
	}
	if run.RC == 0 {
		r.Status = FsckRepaired
	} else {
		r.Status = FsckErrorsRemain
	}
	return nil
}

func isRemote(err error) bool {
	var re *appliance.RemoteError
	return errors.As(err, &re)
}
