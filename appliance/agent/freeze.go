package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/imgbake/imgbake/appliance/proto"
)

// The ioctls of linux/fs.h, _IOWR('X', 119/120, int): x/sys/unix has no
// names for them.
const (
	ioctlFIFREEZE = 0xC0045877
	ioctlFITHAW   = 0xC0045878
)

func (a *Agent) registerFreezeOps(s *server) {
	s.handle(proto.OpFreeze, a.handleFreeze)
	s.handle(proto.OpThaw, a.handleThaw)
}

// freezable are the image's own mounts below the sysroot, in mount order:
// not the appliance's /proc, /sys and /dev bound into it, and each
// filesystem once (a bind mount of the image's fstab is a second mount of
// one: freezing it again would fail with EBUSY).
func freezable() []string {
	var out []string
	seen := map[string]bool{}
	for _, mi := range mountInfoBelow(proto.Sysroot) {
		m := mi.mountpoint
		// The appliance's tmpfs mounts (/run, the resolver) are not the image's.
		if seen[mi.device] || mi.fstype == "tmpfs" {
			continue
		}
		rel := strings.TrimPrefix(m, proto.Sysroot)
		if rel == "" {
			rel = "/"
		}
		pseudo := false
		for _, p := range []string{"/proc", "/sys", "/dev"} {
			if rel == p || strings.HasPrefix(rel, p+"/") {
				pseudo = true
			}
		}
		if !pseudo {
			seen[mi.device] = true
			out = append(out, m)
		}
	}
	return out
}

func fsIoctl(mountpoint string, req uint) error {
	fd, err := unix.Open(mountpoint, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.IoctlSetInt(fd, req, 0)
}

func (a *Agent) handleFreeze(_ context.Context, _ *stream, _ json.RawMessage) (any, error) {
	a.state.Lock()
	mounted := a.mounted
	a.state.Unlock()
	if !mounted {
		return nil, errors.New("freeze: the image is not mounted")
	}
	// A snapshot must not keep the resolv.conf put in place for commands
	// (the next command puts it back).
	if err := a.releaseResolver(); err != nil {
		return nil, fmt.Errorf("freeze: %w", err)
	}
	unix.Sync()
	mps := freezable()
	var res proto.FreezeResult
	a.freezeMu.Lock()
	defer a.freezeMu.Unlock()
	for i := len(mps) - 1; i >= 0; i-- {
		err := fsIoctl(mps[i], ioctlFIFREEZE)
		if errors.Is(err, unix.EOPNOTSUPP) {
			// vfat and others cannot freeze: read-only until the thaw
			// is as consistent (and fails if a file is open for writing).
			if err = unix.Mount("", mps[i], "", unix.MS_REMOUNT|unix.MS_RDONLY, ""); err == nil {
				a.remountedRO = append(a.remountedRO, mps[i])
			}
		}
		if err != nil {
			a.thawLocked()
			return nil, fmt.Errorf("freeze %s: %w", relToRoot(mps[i]), err)
		}
		res.Mountpoints = append(res.Mountpoints, relToRoot(mps[i]))
	}
	return res, nil
}

// thawLocked thaws every frozen mount and makes those remounted read-only
// by a freeze writable again; freezeMu is held.
func (a *Agent) thawLocked() (thawed, problems []string) {
	for _, m := range freezable() {
		err := fsIoctl(m, ioctlFITHAW)
		switch {
		case err == nil:
			thawed = append(thawed, relToRoot(m))
		case errors.Is(err, unix.EINVAL), errors.Is(err, unix.EOPNOTSUPP): // was not frozen
		default:
			problems = append(problems, fmt.Sprintf("thaw %s: %v", relToRoot(m), err))
		}
	}
	for _, m := range a.remountedRO {
		if err := unix.Mount("", m, "", unix.MS_REMOUNT, ""); err != nil {
			problems = append(problems, fmt.Sprintf("remount %s read-write: %v", relToRoot(m), err))
			continue
		}
		thawed = append(thawed, relToRoot(m))
	}
	a.remountedRO = nil
	return thawed, problems
}

func (a *Agent) handleThaw(_ context.Context, _ *stream, _ json.RawMessage) (any, error) {
	a.freezeMu.Lock()
	defer a.freezeMu.Unlock()
	thawed, problems := a.thawLocked()
	res := proto.FreezeResult{Mountpoints: thawed}
	if len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "; "))
	}
	return res, nil
}

func relToRoot(m string) string {
	if rel := strings.TrimPrefix(m, proto.Sysroot); rel != "" {
		return rel
	}
	return "/"
}
