package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/imgbake/imgbake/appliance/proto"
)

// File metadata operations: chmod, chown, rename, symlink, truncate and
// realpath. Like the other file operations they resolve every path inside
// the image with RESOLVE_IN_ROOT. Where a final symlink is followed (chmod,
// chown, truncate) the file is opened with O_PATH, which never opens a
// device or blocks on a FIFO, and changed through its /proc/self/fd magic
// link, so the inode we checked is the inode we change.

func (a *Agent) registerMetaOps(s *server) {
	s.handle(proto.OpChmod, a.handleChmod)
	s.handle(proto.OpChown, a.handleChown)
	s.handle(proto.OpRename, a.handleRename)
	s.handle(proto.OpSymlink, a.handleSymlink)
	s.handle(proto.OpTruncate, a.handleTruncate)
	s.handle(proto.OpRealpath, a.handleRealpath)
}

func fdLink(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

// openPathInRoot opens p (following symlinks inside the root) with O_PATH
// and stats it.
func openPathInRoot(rootfd int, p string) (int, unix.Stat_t, error) {
	var s unix.Stat_t
	fd, err := openInRoot(rootfd, p, unix.O_PATH, 0)
	if err != nil {
		return -1, s, &pathError{"open", p, err}
	}
	if err := unix.Fstat(fd, &s); err != nil {
		unix.Close(fd)
		return -1, s, &pathError{"stat", p, err}
	}
	return fd, s, nil
}

func (a *Agent) handleChmod(_ context.Context, _ *stream, raw json.RawMessage) (any, error) {
	args, rootfd, p, err := rooted(a, raw, func(x *proto.ChmodArgs) string { return x.Path })
	if err != nil {
		return nil, err
	}
	if args.Mode&^0o7777 != 0 {
		return nil, fmt.Errorf("chmod %s: mode %#o has bits beyond 07777", p, args.Mode)
	}
	fd, s, err := openPathInRoot(rootfd, p)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	if s.Mode&0o7777 == args.Mode {
		return proto.ChangeResult{Changed: false}, nil
	}
	if err := unix.Chmod(fdLink(fd), args.Mode); err != nil {
		return nil, &pathError{"chmod", p, err}
	}
	return proto.ChangeResult{Changed: true}, nil
}

func (a *Agent) handleChown(_ context.Context, _ *stream, raw json.RawMessage) (any, error) {
	args, rootfd, p, err := rooted(a, raw, func(x *proto.ChownArgs) string { return x.Path })
	if err != nil {
		return nil, err
	}
	if args.Owner == "" {
		return nil, fmt.Errorf("chown %s: no owner given", p)
	}
	uid, gid, err := a.resolveOwner(args.Owner)
	if err != nil {
		return nil, err
	}
	fd, s, err := openPathInRoot(rootfd, p)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	if int(s.Uid) == uid && int(s.Gid) == gid {
		return proto.ChangeResult{Changed: false}, nil
	}
	if err := unix.Fchownat(fd, "", uid, gid, unix.AT_EMPTY_PATH); err != nil {
		return nil, &pathError{"chown", p, err}
	}
	// The kernel clears setuid/setgid on chown; the step changes the owner
	// only, so put the mode back.
	var after unix.Stat_t
	if err := unix.Fstat(fd, &after); err != nil {
		return nil, &pathError{"stat", p, err}
	}
	if after.Mode&0o7777 != s.Mode&0o7777 {
		if err := unix.Chmod(fdLink(fd), s.Mode&0o7777); err != nil {
			return nil, &pathError{"chmod", p, err}
		}
	}
	return proto.ChangeResult{Changed: true}, nil
}

func (a *Agent) handleRename(_ context.Context, _ *stream, raw json.RawMessage) (any, error) {
	args, err := decode[proto.RenameArgs](raw)
	if err != nil {
		return nil, err
	}
	rootfd, err := a.root()
	if err != nil {
		return nil, err
	}
	src, err := cleanImagePath(args.Src)
	if err != nil {
		return nil, err
	}
	dest, err := cleanImagePath(args.Dest)
	if err != nil {
		return nil, err
	}
	switch {
	case src == "/" || dest == "/":
		return nil, errors.New("rename: not allowed on /")
	case src == dest:
		return proto.ChangeResult{Changed: false}, nil
	case strings.HasPrefix(dest, src+"/"):
		return nil, &pathError{"rename", src, unix.EINVAL}
	}
	srcExists, err := lexists(rootfd, src)
	if err != nil {
		return nil, err
	}
	if !srcExists {
		destExists, err := lexists(rootfd, dest)
		if err != nil {
			return nil, err
		}
		if destExists {
			return proto.ChangeResult{Changed: false}, nil // already moved
		}
		return nil, &pathError{"rename", src, unix.ENOENT}
	}
	sdir, sbase, err := openParent(rootfd, src)
	if err != nil {
		return nil, err
	}
	defer unix.Close(sdir)
	ddir, dbase, err := openParent(rootfd, dest)
	if err != nil {
		return nil, err
	}
	defer unix.Close(ddir)
	if err := unix.Renameat(sdir, sbase, ddir, dbase); err != nil {
		return nil, &pathError{"rename", src + " to " + dest, err}
	}
	return proto.ChangeResult{Changed: true}, nil
}

// lexists reports whether p exists without following a final symlink. A
// missing parent directory means p does not exist.
func lexists(rootfd int, p string) (bool, error) {
	dirfd, base, err := openParent(rootfd, p)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, err
	}
	defer unix.Close(dirfd)
	var s unix.Stat_t
	switch err := unix.Fstatat(dirfd, base, &s, unix.AT_SYMLINK_NOFOLLOW); err {
	case nil:
		return true, nil
	case unix.ENOENT:
		return false, nil
	default:
		return false, &pathError{"stat", p, err}
	}
}

func (a *Agent) handleSymlink(_ context.Context, _ *stream, raw json.RawMessage) (any, error) {
	args, err := decode[proto.SymlinkArgs](raw)
	if err != nil {
		return nil, err
	}
	rootfd, err := a.root()
	if err != nil {
		return nil, err
	}
	if args.Target == "" || strings.IndexByte(args.Target, 0) >= 0 || len(args.Target) >= unix.PathMax {
		return nil, fmt.Errorf("symlink %s: invalid target %q", args.Path, args.Target)
	}
	dirfd, base, err := openParent(rootfd, args.Path)
	if err != nil {
		return nil, err
	}
	defer unix.Close(dirfd)
	var s unix.Stat_t
	switch err := unix.Fstatat(dirfd, base, &s, unix.AT_SYMLINK_NOFOLLOW); {
	case err == unix.ENOENT:
		if err := unix.Symlinkat(args.Target, dirfd, base); err != nil {
			return nil, &pathError{"symlink", args.Path, err}
		}
		return proto.ChangeResult{Changed: true}, nil
	case err != nil:
		return nil, &pathError{"stat", args.Path, err}
	case s.Mode&unix.S_IFMT == unix.S_IFDIR:
		return nil, &pathError{"symlink", args.Path, unix.EISDIR}
	case s.Mode&unix.S_IFMT == unix.S_IFLNK:
		buf := make([]byte, unix.PathMax)
		n, err := unix.Readlinkat(dirfd, base, buf)
		if err != nil {
			return nil, &pathError{"readlink", args.Path, err}
		}
		if string(buf[:n]) == args.Target {
			return proto.ChangeResult{Changed: false}, nil
		}
	}
	// Replace what is there atomically: a new link under a temporary name,
	// renamed over the old one.
	tmp := ".imgbake-" + randomSuffix() + "-" + base
	if len(tmp) > 255 {
		tmp = tmp[:255]
	}
	if err := unix.Symlinkat(args.Target, dirfd, tmp); err != nil {
		return nil, &pathError{"symlink", args.Path, err}
	}
	if err := unix.Renameat(dirfd, tmp, dirfd, base); err != nil {
		_ = unix.Unlinkat(dirfd, tmp, 0)
		return nil, &pathError{"rename", args.Path, err}
	}
	return proto.ChangeResult{Changed: true}, nil
}

func (a *Agent) handleTruncate(_ context.Context, _ *stream, raw json.RawMessage) (any, error) {
	args, rootfd, p, err := rooted(a, raw, func(x *proto.TruncateArgs) string { return x.Path })
	if err != nil {
		return nil, err
	}
	fd, s, err := openPathInRoot(rootfd, p)
	if err != nil {
		if !args.Create || !errors.Is(err, unix.ENOENT) {
			return nil, err
		}
		dirfd, base, err := openParent(rootfd, p)
		if err != nil {
			return nil, err
		}
		defer unix.Close(dirfd)
		// O_EXCL|O_NOFOLLOW: a dangling symlink is an error, never followed.
		nfd, err := unix.Openat(dirfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
		if err != nil {
			return nil, &pathError{"create", p, err}
		}
		unix.Close(nfd)
		return proto.ChangeResult{Changed: true}, nil
	}
	defer unix.Close(fd)
	if s.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fmt.Errorf("truncate %s: not a regular file", p)
	}
	if s.Size == 0 {
		return proto.ChangeResult{Changed: false}, nil
	}
	if err := unix.Truncate(fdLink(fd), 0); err != nil {
		return nil, &pathError{"truncate", p, err}
	}
	return proto.ChangeResult{Changed: true}, nil
}

func (a *Agent) handleRealpath(_ context.Context, _ *stream, raw json.RawMessage) (any, error) {
	_, rootfd, p, err := rooted(a, raw, func(x *proto.PathArgs) string { return x.Path })
	if err != nil {
		return nil, err
	}
	real, exists, err := realpathIn(rootfd, p)
	if err != nil {
		return nil, err
	}
	return proto.RealpathResult{Path: real, Exists: exists}, nil
}

// realpathIn resolves every symlink of p as the image's root would (a
// chroot), following a dangling final symlink to where its target would be.
func realpathIn(rootfd int, p string) (string, bool, error) {
	rootAbs, err := readlinkString(fdLink(rootfd))
	if err != nil {
		return "", false, err
	}
	for range 40 {
		fd, err := openInRoot(rootfd, p, unix.O_PATH, 0)
		if err == nil {
			rel, rerr := pathInRoot(fd, rootAbs)
			unix.Close(fd)
			if rerr != nil {
				return "", false, &pathError{"realpath", p, rerr}
			}
			return rel, true, nil
		}
		if err != unix.ENOENT {
			return "", false, &pathError{"open", p, err}
		}
		// Something is missing: the final component (or what it links to),
		// or a directory on the way, which is an error.
		dirfd, base, err := openParent(rootfd, p)
		if err != nil {
			return "", false, err
		}
		dir, err := pathInRoot(dirfd, rootAbs)
		if err != nil {
			unix.Close(dirfd)
			return "", false, &pathError{"realpath", p, err}
		}
		var s unix.Stat_t
		err = unix.Fstatat(dirfd, base, &s, unix.AT_SYMLINK_NOFOLLOW)
		if err == unix.ENOENT {
			unix.Close(dirfd)
			return path.Join(dir, base), false, nil
		}
		if err != nil || s.Mode&unix.S_IFMT != unix.S_IFLNK {
			unix.Close(dirfd)
			if err == nil {
				err = unix.ENOENT
			}
			return "", false, &pathError{"stat", p, err}
		}
		buf := make([]byte, unix.PathMax)
		n, err := unix.Readlinkat(dirfd, base, buf)
		unix.Close(dirfd)
		if err != nil {
			return "", false, &pathError{"readlink", p, err}
		}
		target := string(buf[:n])
		if path.IsAbs(target) {
			p = path.Clean(target)
		} else {
			p = path.Join(dir, target)
		}
	}
	return "", false, &pathError{"realpath", p, unix.ELOOP}
}

func readlinkString(p string) (string, error) {
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlink(p, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// pathInRoot is the image path of an open fd: its /proc/self/fd link made
// relative to the root's.
func pathInRoot(fd int, rootAbs string) (string, error) {
	abs, err := readlinkString(fdLink(fd))
	if err != nil {
		return "", err
	}
	switch {
	case abs == rootAbs:
		return "/", nil
	case rootAbs == "/":
		return abs, nil
	case strings.HasPrefix(abs, rootAbs+"/"):
		return abs[len(rootAbs):], nil
	}
	return "", fmt.Errorf("resolves outside the image root (%s)", abs)
}
