package fsops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"regexp"
	"strconv"
	"strings"

	"github.com/imgbake/imgbake/appliance"
	"github.com/imgbake/imgbake/appliance/proto"
)

// GrowOptions say what GrowRoot grows once the disk under it is larger.
type GrowOptions struct {
	// Expand is the partition to grow (/dev/vda2); "" is the one that
	// holds the root filesystem (or its LVM physical volume).
	Expand string
	Output io.Writer // each command and its output as it runs (-v); nil: none
}

// GrowResult says what GrowRoot did.
type GrowResult struct {
	Partition  string // the partition grown; "" for a filesystem on the whole disk
	Filesystem string // the device of the filesystem grown
	Type       string
	Mountpoint string
	Before     uint64 // the filesystem's size in bytes (statvfs)
	After      uint64
	Commands   []string // what ran, in order
}

// partitionName splits an appliance partition device (/dev/vda2) into
// its disk and number.
var partitionName = regexp.MustCompile(`^(/dev/vd[a-z]+)([0-9]+)$`)

// GrowRoot grows the partition that holds the image's root filesystem (or
// o.Expand) to the end of its disk, moving a GPT's backup header there
// first, then the LVM physical volume and logical volume on it, then the
// filesystem, online: the table with the agent's grow_partition (go-diskfs
// and BLKPG), the rest with the appliance's own lvm, resize2fs, xfs_growfs
// or btrfs (the rescue tools), never the image's.
func GrowRoot(ctx context.Context, s Session, o GrowOptions) (GrowResult, error) {
	var res GrowResult
	usage, err := s.FSUsage(ctx)
	if err != nil {
		return res, err
	}
	fss, err := s.Probe(ctx)
	if err != nil {
		return res, err
	}
	g := &grower{s: s, o: o, res: &res}
	target, ok := growTarget(usage, fss, o.Expand)
	if !ok {
		if o.Expand != "" {
			return res, fmt.Errorf("--expand %s: no mounted filesystem of the image is on it (directly or through LVM)", o.Expand)
		}
		return res, errors.New("the image's root filesystem is not mounted")
	}
	res.Filesystem, res.Type, res.Mountpoint, res.Before = target.Device, target.Type, target.Mountpoint, target.Size
	lv := lvOf(fss, target.Device)
	part := target.Device
	if lv != nil {
		pv, err := g.growablePV(ctx, lv.VG, o.Expand)
		if err != nil {
			return res, err
		}
		part = pv
	}
	if m := partitionName.FindStringSubmatch(part); m != nil {
		res.Partition = part
		if err := g.growPartition(ctx, m[1], m[2]); err != nil {
			return res, err
		}
	} else if o.Expand != "" {
		return res, fmt.Errorf("--expand %s: not a partition of a disk", o.Expand)
	}
	if lv != nil {
		if _, err := g.run(ctx, nil, "lvm", "pvresize", part); err != nil {
			return res, err
		}
		if _, err := g.run(ctx, nil, "lvm", "lvextend", "-l", "+100%FREE", "/dev/"+lv.VG+"/"+lv.LV); err != nil &&
			!strings.Contains(err.Error(), "matches existing size") {
			return res, err
		}
	}
	if err := g.growFilesystem(ctx, target); err != nil {
		return res, err
	}
	after, err := s.FSUsage(ctx)
	if err != nil {
		return res, err
	}
	for _, u := range after {
		if u.Mountpoint == target.Mountpoint {
			res.After = u.Size
		}
	}
	return res, nil
}

// growTarget is the mounted filesystem to grow: the root, or the one on
// expand (a partition, or an LVM physical volume of the root's group).
func growTarget(usage []proto.FSUsage, fss []proto.Filesystem, expand string) (proto.FSUsage, bool) {
	for _, u := range usage {
		if expand == "" && u.Mountpoint == "/" {
			return u, true
		}
		if expand != "" && u.Device == expand {
			return u, true
		}
	}
	if expand != "" {
		// A physical volume: the root's logical volume lives on it.
		for _, u := range usage {
			if u.Mountpoint == "/" && lvOf(fss, u.Device) != nil {
				return u, true
			}
		}
	}
	return proto.FSUsage{}, false
}

func lvOf(fss []proto.Filesystem, device string) *proto.Filesystem {
	for i, f := range fss {
		if f.Device == device && f.VG != "" {
			return &fss[i]
		}
	}
	return nil
}

type grower struct {
	s   Session
	o   GrowOptions
	res *GrowResult
}

// run executes a rescue tool in the appliance; a non-zero exit is an
// error carrying its output.
func (g *grower) run(ctx context.Context, stdin io.Reader, tool string, args ...string) (string, error) {
	line := tool + " " + strings.Join(args, " ")
	g.res.Commands = append(g.res.Commands, line)
	if g.o.Output != nil {
		fmt.Fprintf(g.o.Output, "$ %s\n", line)
	}
	out, errb := &capture{live: g.o.Output}, &capture{live: g.o.Output}
	argv := append([]string{path.Join(proto.RescueBinDir, tool)}, args...)
	r, err := g.s.Exec(ctx, proto.ExecArgs{Argv: argv, NoChroot: true, Env: appliance.RescueEnv()}, stdin, out, errb)
	if err != nil {
		var re *appliance.RemoteError
		if errors.Is(err, fs.ErrNotExist) && errors.As(err, &re) {
			return "", fmt.Errorf("the appliance has no %s: install it on the host and imgbake adds it to its rescue tools", tool)
		}
		return "", fmt.Errorf("%s: %w", line, err)
	}
	if r.RC != 0 || r.Signal != "" {
		return out.String(), fmt.Errorf("%s: exited with rc %d: %s", line, r.RC, strings.TrimSpace(errb.String()+" "+out.String()))
	}
	return out.String(), nil
}

// growablePV is the physical volume of vg to grow: expand when given,
// else the one that is the last partition of its disk.
func (g *grower) growablePV(ctx context.Context, vg, expand string) (string, error) {
	out, err := g.run(ctx, nil, "lvm", "pvs", "--noheadings", "--separator", "|", "-o", "pv_name,vg_name")
	if err != nil {
		return "", err
	}
	var pvs []string
	for _, line := range strings.Split(out, "\n") {
		name, group, ok := strings.Cut(strings.TrimSpace(line), "|")
		if ok && group == vg {
			pvs = append(pvs, name)
		}
	}
	if expand != "" {
		for _, pv := range pvs {
			if pv == expand {
				return pv, nil
			}
		}
		return "", fmt.Errorf("--expand %s is not a physical volume of the root's volume group %s (its volumes: %s)", expand, vg, strings.Join(pvs, ", "))
	}
	if len(pvs) == 1 {
		return pvs[0], nil
	}
	return "", fmt.Errorf("the root's volume group %s has %d physical volumes (%s): name the one to grow with --expand", vg, len(pvs), strings.Join(pvs, ", "))
}

// growPartition has the agent rewrite the disk's partition table with
// go-diskfs (the GPT's backup moved to the new end, the partition grown to
// it, every GUID, name and attribute kept) and tell the kernel the new
// size, online; a partition after it is refused there.
func (g *grower) growPartition(ctx context.Context, disk, number string) error {
	n, err := strconv.Atoi(number)
	if err != nil {
		return fmt.Errorf("partition number %q: %w", number, err)
	}
	line := "grow_partition " + disk + " " + number
	g.res.Commands = append(g.res.Commands, line)
	r, err := g.s.GrowPartition(ctx, disk, n)
	if err != nil {
		return err
	}
	if g.o.Output != nil {
		what := "already ends at the end of the disk"
		if r.Changed {
			what = fmt.Sprintf("sectors %d-%d → %d-%d", r.Start, r.OldEnd, r.Start, r.NewEnd)
		}
		moved := ""
		if r.BackupMoved {
			moved = ", backup GPT moved to the end"
		}
		fmt.Fprintf(g.o.Output, "$ %s\n%s%s (%s): %s%s\n", line, disk, number, r.Table, what, moved)
	}
	return nil
}

func (g *grower) growFilesystem(ctx context.Context, u proto.FSUsage) error {
	mp := path.Join(proto.Sysroot, u.Mountpoint)
	var err error
	switch u.Type {
	case "ext2", "ext3", "ext4":
		_, err = g.run(ctx, nil, "resize2fs", u.Device)
	case "xfs":
		_, err = g.run(ctx, nil, "xfs_growfs", mp)
	case "btrfs":
		_, err = g.run(ctx, nil, "btrfs", "filesystem", "resize", "max", mp)
	default:
		return fmt.Errorf("cannot grow a %s filesystem (%s): ext2/3/4, xfs and btrfs can grow", u.Type, u.Device)
	}
	return err
}
