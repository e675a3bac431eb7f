package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/imgbake/imgbake/appliance/proto"
)

// With the network on, every command in the image resolves through QEMU's
// resolver, as virt-customize's --run does with --network. The image's own
// /etc/resolv.conf usually names a server the appliance cannot reach, or
// links into a /run that only a booted system fills. How it is replaced,
// in order of preference:
//
//   - a regular file (also an immutable one): our file is bind-mounted
//     over it, so the image's file is never written;
//   - a symlink into /run (systemd-resolved, resolvconf): /run is our
//     tmpfs, so our file is created there, where a booted system has it;
//   - a symlink to an existing file of the image: bound over that file;
//   - missing, or a dangling symlink elsewhere: the link is renamed aside
//     and our file put in its place, undone at teardown.
//
// Only the last writes to the image, and it is undone before every freeze
// (a step-layer snapshot must not keep it) and at shutdown; the next
// command sets it up again. A command's own writes to a bound file are
// lost with the mount (as in a container); a command that replaced a
// resolv.conf we put in place keeps its version.

const (
	resolvConfPath  = "/etc/resolv.conf"
	resolvSavedName = ".resolv.conf.imgbake-saved"
	resolverFile    = "/run/imgbake/resolv.conf" // the appliance's own, bound into the image
)

// resolverState is how the image's resolv.conf was replaced.
type resolverState struct {
	kind      string // "": not replaced; "bind", "runfile", "placed"
	mountedAt string // bind: the appliance path of the mount
	created   string // runfile: the image path of our file on the /run tmpfs
	saved     bool   // placed: the image's symlink was renamed to resolvSavedName
	dev, ino  uint64 // placed: our file, to tell whether a command replaced it
}

func resolverContent() []byte { return []byte("nameserver " + resolverIP + "\n") }

// commandNetwork gives a command about to run in the image the network
// and the resolver, when the host asked for the network for commands.
func (a *Agent) commandNetwork(ctx context.Context) error {
	a.netMu.Lock()
	defer a.netMu.Unlock()
	if !a.netForCommands {
		return nil
	}
	if !a.netUp {
		if _, err := a.networkUpLocked(ctx); err != nil {
			return err
		}
	}
	if a.resolver.kind != "" {
		return nil
	}
	st, err := a.installResolver()
	if err != nil {
		return fmt.Errorf("network: pointing %s at the appliance's resolver: %w", resolvConfPath, err)
	}
	a.resolver = st
	return nil
}

// releaseResolver puts the image's resolv.conf back as it was; netMu is
// not held.
func (a *Agent) releaseResolver() error {
	a.netMu.Lock()
	defer a.netMu.Unlock()
	if a.resolver.kind == "" {
		return nil
	}
	err := a.removeResolver(a.resolver)
	a.resolver = resolverState{}
	if err != nil {
		return fmt.Errorf("restoring the image's %s: %w", resolvConfPath, err)
	}
	return nil
}

func (a *Agent) installResolver() (resolverState, error) {
	if err := os.MkdirAll(path.Dir(resolverFile), 0o755); err != nil {
		return resolverState{}, err
	}
	if err := os.WriteFile(resolverFile, resolverContent(), 0o644); err != nil {
		return resolverState{}, err
	}
	rootfd, err := unix.Open(a.sysroot, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return resolverState{}, err
	}
	defer unix.Close(rootfd)
	dirfd, base, err := openParent(rootfd, resolvConfPath)
	if err != nil {
		return resolverState{}, err
	}
	defer unix.Close(dirfd)
	var s unix.Stat_t
	err = unix.Fstatat(dirfd, base, &s, unix.AT_SYMLINK_NOFOLLOW)
	switch {
	case err == unix.ENOENT:
		return placeResolver(dirfd, false)
	case err != nil:
		return resolverState{}, err
	case s.Mode&unix.S_IFMT == unix.S_IFREG:
		fd, err := unix.Openat(dirfd, base, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return resolverState{}, err
		}
		defer unix.Close(fd)
		return bindResolver(fd)
	case s.Mode&unix.S_IFMT != unix.S_IFLNK:
		return resolverState{}, fmt.Errorf("%s is neither a file nor a symlink (mode %o)", resolvConfPath, s.Mode)
	}
	// A symlink: where it leads inside the image, never outside.
	target, exists, err := realpathIn(rootfd, resolvConfPath)
	if err == nil && exists {
		fd, ts, err := openPathInRoot(rootfd, target)
		if err != nil {
			return resolverState{}, err
		}
		defer unix.Close(fd)
		if ts.Mode&unix.S_IFMT == unix.S_IFREG {
			return bindResolver(fd)
		}
		return placeResolver(dirfd, true)
	}
	if err != nil {
		// A directory on the way is missing (/run/systemd/resolve on a
		// /run that only a booted system fills): the link's own target.
		if target, err = linkTarget(rootfd, dirfd, base); err != nil {
			return resolverState{}, err
		}
	}
	if a.runTmpfs && strings.HasPrefix(target, "/run/") {
		if err := a.createOnRunTmpfs(rootfd, target); err == nil {
			return resolverState{kind: "runfile", created: target}, nil
		} else if !errors.Is(err, errNotOnTmpfs) {
			return resolverState{}, err
		}
	}
	return placeResolver(dirfd, true)
}

// linkTarget is the image path the symlink base in dirfd points at,
// joined lexically with the directory's real path.
func linkTarget(rootfd, dirfd int, base string) (string, error) {
	rootAbs, err := readlinkString(fdLink(rootfd))
	if err != nil {
		return "", err
	}
	dir, err := pathInRoot(dirfd, rootAbs)
	if err != nil {
		return "", err
	}
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(dirfd, base, buf)
	if err != nil {
		return "", err
	}
	t := string(buf[:n])
	if path.IsAbs(t) {
		return path.Clean(t), nil
	}
	return path.Join(dir, t), nil
}

// bindResolver mounts our file over the regular file fd (an O_PATH fd
// opened inside the image root).
func bindResolver(fd int) (resolverState, error) {
	if err := unix.Mount(resolverFile, fdLink(fd), "", unix.MS_BIND, ""); err != nil {
		return resolverState{}, fmt.Errorf("bind mount: %w", err)
	}
	// The path of the mount as the appliance sees it, for the unmount.
	at, err := readlinkString(fdLink(fd))
	if err != nil {
		return resolverState{}, err
	}
	return resolverState{kind: "bind", mountedAt: at}, nil
}

var errNotOnTmpfs = errors.New("not on the /run tmpfs")

// createOnRunTmpfs writes our file at p (under /run of the image, which is
// our tmpfs), making its directories. Every directory on the way is
// checked to be on that tmpfs: the image's symlinks could point elsewhere.
func (a *Agent) createOnRunTmpfs(rootfd int, p string) error {
	var runSt unix.Stat_t
	runfd, err := openInRoot(rootfd, "/run", unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	err = unix.Fstat(runfd, &runSt)
	unix.Close(runfd)
	if err != nil {
		return err
	}
	dir := path.Dir(p)
	for _, d := range ancestors(dir) {
		if d == "/" {
			continue
		}
		if err := a.mkdirParentsOnDev(rootfd, d, runSt.Dev); err != nil {
			return err
		}
	}
	dirfd, err := openInRoot(rootfd, dir, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer unix.Close(dirfd)
	var ds unix.Stat_t
	if err := unix.Fstat(dirfd, &ds); err != nil {
		return err
	}
	if ds.Dev != runSt.Dev {
		return errNotOnTmpfs
	}
	fd, err := unix.Openat(dirfd, path.Base(p), unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	_, err = unix.Write(fd, resolverContent())
	return err
}

// mkdirParentsOnDev makes directory d of the image if missing; an existing
// one below /run must be on the tmpfs (dev).
func (a *Agent) mkdirParentsOnDev(rootfd int, d string, dev uint64) error {
	parent, base, err := openParent(rootfd, d)
	if err != nil {
		return err
	}
	defer unix.Close(parent)
	var ps unix.Stat_t
	if err := unix.Fstat(parent, &ps); err != nil {
		return err
	}
	if d != "/run" && ps.Dev != dev {
		return errNotOnTmpfs
	}
	if err := unix.Mkdirat(parent, base, 0o755); err != nil && err != unix.EEXIST {
		return err
	}
	return nil
}

// ancestors lists p's directories from the top: /run, /run/systemd, ...
func ancestors(p string) []string {
	var out []string
	for d := p; d != "/" && d != "."; d = path.Dir(d) {
		out = append([]string{d}, out...)
	}
	return out
}

// placeResolver puts our file at /etc/resolv.conf of the image (dirfd is
// /etc), moving the image's symlink aside first when there is one.
func placeResolver(dirfd int, saveLink bool) (resolverState, error) {
	st := resolverState{kind: "placed"}
	if saveLink {
		if err := unix.Renameat2(dirfd, "resolv.conf", dirfd, resolvSavedName, unix.RENAME_NOREPLACE); err != nil {
			return st, fmt.Errorf("moving the image's symlink aside: %w", err)
		}
		st.saved = true
	}
	fd, err := unix.Openat(dirfd, "resolv.conf", unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err == nil {
		_, err = unix.Write(fd, resolverContent())
		var s unix.Stat_t
		if err == nil {
			err = unix.Fstat(fd, &s)
		}
		st.dev, st.ino = s.Dev, s.Ino
		unix.Close(fd)
	}
	if err != nil {
		_ = unix.Unlinkat(dirfd, "resolv.conf", 0)
		if st.saved {
			_ = unix.Renameat(dirfd, resolvSavedName, dirfd, "resolv.conf")
		}
		return resolverState{}, err
	}
	return st, nil
}

func (a *Agent) removeResolver(st resolverState) error {
	switch st.kind {
	case "bind":
		return unix.Unmount(st.mountedAt, unix.MNT_DETACH)
	case "runfile":
		rootfd, err := unix.Open(a.sysroot, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(rootfd)
		dirfd, base, err := openParent(rootfd, st.created)
		if err != nil {
			return err
		}
		defer unix.Close(dirfd)
		if err := unix.Unlinkat(dirfd, base, 0); err != nil && err != unix.ENOENT {
			return err
		}
		return nil
	case "placed":
		rootfd, err := unix.Open(a.sysroot, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(rootfd)
		dirfd, _, err := openParent(rootfd, resolvConfPath)
		if err != nil {
			return err
		}
		defer unix.Close(dirfd)
		var s unix.Stat_t
		err = unix.Fstatat(dirfd, "resolv.conf", &s, unix.AT_SYMLINK_NOFOLLOW)
		ours := err == nil && s.Dev == st.dev && s.Ino == st.ino
		if ours || err == unix.ENOENT {
			if ours {
				if err := unix.Unlinkat(dirfd, "resolv.conf", 0); err != nil {
					return err
				}
			}
			if st.saved {
				return unix.Renameat2(dirfd, resolvSavedName, dirfd, "resolv.conf", unix.RENAME_NOREPLACE)
			}
			return nil
		}
		// A command put its own resolv.conf there: that change stays.
		if st.saved {
			return unix.Unlinkat(dirfd, resolvSavedName, 0)
		}
		return nil
	}
	return nil
}

// networkResult is what network_up reports.
func (a *Agent) networkResult() proto.NetworkResult {
	return proto.NetworkResult{Interface: a.netIf, Address: guestAddr, Gateway: gatewayIP, Resolver: resolverIP}
}
