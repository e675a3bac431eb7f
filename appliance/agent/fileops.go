package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/imgbake/imgbake/appliance/proto"
	"github.com/imgbake/imgbake/internal/filemode"
)

func decode[T any](raw json.RawMessage) (T, error) {
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		return v, fmt.Errorf("bad arguments: %w", err)
	}
	return v, nil
}

// rooted decodes a request about one image path: its arguments, the image
// root's fd, and the path cleaned (absolute, no "..").
func rooted[T any](a *Agent, raw json.RawMessage, path func(*T) string) (T, int, string, error) {
	args, err := decode[T](raw)
	if err != nil {
		return args, -1, "", err
	}
	rootfd, err := a.root()
	if err != nil {
		return args, -1, "", err
	}
	p, err := cleanImagePath(path(&args))
	return args, rootfd, p, err
}

func (a *Agent) root() (int, error) {
	a.state.Lock()
	defer a.state.Unlock()
	if !a.mounted {
		return -1, errors.New("the image is not mounted")
	}
	return a.rootfd, nil
}

func (a *Agent) isMounted() bool {
	a.state.Lock()
	defer a.state.Unlock()
	return a.mounted
}

// handleWrite writes a file atomically: temp file in the same directory,
// then rename. No fsync per file: the appliance syncs everything once at
// shutdown and a run that dies before that is discarded with its overlay. Mode and owner are kept from an existing file unless
// given. When the result would be identical, the image is left untouched
// and Changed is false.
func (a *Agent) handleWrite(_ context.Context, st *stream, raw json.RawMessage) (any, error) {
	args, err := decode[proto.WriteArgs](raw)
	if err != nil {
		return nil, err
	}
	rootfd, err := a.root()
	if err != nil {
		return nil, err
	}
	dirfd, base, err := openParent(rootfd, args.Path)
	if err != nil {
		_, _ = io.Copy(io.Discard, st)
		return nil, err
	}
	defer unix.Close(dirfd)

	mode := uint32(0o644)
	uid, gid := 0, 0
	var old unix.Stat_t
	exists := unix.Fstatat(dirfd, base, &old, unix.AT_SYMLINK_NOFOLLOW) == nil
	if exists && old.Mode&unix.S_IFMT == unix.S_IFDIR {
		_, _ = io.Copy(io.Discard, st)
		return nil, &pathError{"write", args.Path, unix.EISDIR}
	}
	if exists && old.Mode&unix.S_IFMT == unix.S_IFREG {
		mode, uid, gid = old.Mode&0o7777, int(old.Uid), int(old.Gid)
	}
	if args.Mode != nil {
		mode = *args.Mode & 0o7777
	}
	if args.Owner != "" {
		if uid, gid, err = a.resolveOwner(args.Owner); err != nil {
			_, _ = io.Copy(io.Discard, st)
			return nil, err
		}
	}

	tmp := ".imgbake-" + randomSuffix() + "-" + base
	if len(tmp) > 255 {
		tmp = tmp[:255]
	}
	fd, err := unix.Openat(dirfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		_, _ = io.Copy(io.Discard, st)
		return nil, &pathError{"create", args.Path, err}
	}
	f := os.NewFile(uintptr(fd), tmp)
	committed := false
	defer func() {
		f.Close()
		if !committed {
			_ = unix.Unlinkat(dirfd, tmp, 0)
		}
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), st)
	if err != nil {
		_, _ = io.Copy(io.Discard, st)
		return nil, &pathError{"write", args.Path, unwrapErrno(err)}
	}
	if exists && old.Mode&unix.S_IFMT == unix.S_IFREG && old.Size == n &&
		old.Mode&0o7777 == mode && int(old.Uid) == uid && int(old.Gid) == gid {
		if same, _ := sameContent(dirfd, base, h.Sum(nil)); same {
			return proto.ChangeResult{Changed: false}, nil
		}
	}
	if err := f.Chown(uid, gid); err != nil {
		return nil, &pathError{"chown", args.Path, unwrapErrno(err)}
	}
	// chmod after chown: chown clears setuid bits.
	if err := f.Chmod(filemode.FromUnix(mode)); err != nil {
		return nil, &pathError{"chmod", args.Path, unwrapErrno(err)}
	}
	if err := unix.Renameat(dirfd, tmp, dirfd, base); err != nil {
		return nil, &pathError{"rename", args.Path, err}
	}
	committed = true
	return proto.ChangeResult{Changed: true}, nil
}

func sameContent(dirfd int, name string, sum []byte) (bool, error) {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, err
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return false, err
	}
	return bytes.Equal(h.Sum(nil), sum), nil
}

func randomSuffix() string {
	// Not crypto/rand: O_EXCL guards collisions, and getrandom() may block
	// while the guest CRNG initialises.
	return strconv.FormatUint(rand.Uint64(), 36)
}

// unwrapErrno digs the errno out of *os.PathError and friends.
func unwrapErrno(err error) error {
	var errno unix.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return err
}

func (a *Agent) handleRead(_ context.Context, st *stream, raw json.RawMessage) (any, error) {
	_, rootfd, p, err := rooted(a, raw, func(x *proto.PathArgs) string { return x.Path })
	if err != nil {
		return nil, err
	}
	fd, err := openInRoot(rootfd, p, unix.O_RDONLY, 0)
	if err != nil {
		return nil, &pathError{"open", p, err}
	}
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		return nil, &pathError{"read", p, unix.EISDIR}
	}
	n, err := io.CopyBuffer(frameWriter{st, proto.TData}, f, make([]byte, proto.ChunkSize))
	if err != nil {
		return nil, &pathError{"read", p, unwrapErrno(err)}
	}
	if err := st.closeWrite(); err != nil {
		return nil, err
	}
	return proto.ReadResult{Size: n}, nil
}

func (a *Agent) handleStat(_ context.Context, _ *stream, raw json.RawMessage) (any, error) {
	_, rootfd, p, err := rooted(a, raw, func(x *proto.PathArgs) string { return x.Path })
	if err != nil {
		return nil, err
	}
	if p == "/" {
		return statAt(rootfd, "", unix.AT_EMPTY_PATH)
	}
	dirfd, base, err := openParent(rootfd, p)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return proto.StatResult{}, nil
		}
		return nil, err
	}
	defer unix.Close(dirfd)
	return statAt(dirfd, base, unix.AT_SYMLINK_NOFOLLOW)
}

func statAt(dirfd int, name string, flags int) (proto.StatResult, error) {
	var s unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &s, flags); err != nil {
		if err == unix.ENOENT {
			return proto.StatResult{}, nil
		}
		return proto.StatResult{}, &pathError{"stat", name, err}
	}
	r := proto.StatResult{
		Exists:  true,
		Mode:    uint32(filemode.FromUnix(s.Mode)),
		Size:    s.Size,
		UID:     int(s.Uid),
		GID:     int(s.Gid),
		MTimeNS: s.Mtim.Nano(),
	}
	if s.Mode&unix.S_IFMT == unix.S_IFLNK {
		buf := make([]byte, 4096)
		if n, err := unix.Readlinkat(dirfd, name, buf); err == nil {
			r.Target = string(buf[:n])
		}
	}
	return r, nil
}

func (a *Agent) handleMkdir(_ context.Context, _ *stream, raw json.RawMessage) (any, error) {
	args, rootfd, p, err := rooted(a, raw, func(x *proto.MkdirArgs) string { return x.Path })
	if err != nil {
		return nil, err
	}
	mode := uint32(0o755)
	if args.Mode != nil {
		mode = *args.Mode & 0o7777
	}
	uid, gid := -1, -1
	if args.Owner != "" {
		if uid, gid, err = a.resolveOwner(args.Owner); err != nil {
			return nil, err
		}
	}
	changed, err := mkdirAll(rootfd, p, mode, args.Parents)
	if err != nil {
		return nil, err
	}
	// Apply mode and owner to the final directory even if it existed, so the
	// step's result is what the recipe says.
	fd, err := openInRoot(rootfd, p, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, &pathError{"open", p, err}
	}
	defer unix.Close(fd)
	var s unix.Stat_t
	if err := unix.Fstat(fd, &s); err != nil {
		return nil, err
	}
	if (uid >= 0 && int(s.Uid) != uid) || (gid >= 0 && int(s.Gid) != gid) {
		if err := unix.Fchown(fd, uid, gid); err != nil {
			return nil, &pathError{"chown", p, err}
		}
		changed = true
	}
	// A new directory was subject to the umask; an existing one keeps its
	// mode unless the recipe names one.
	if (args.Mode != nil || changed) && s.Mode&0o7777 != mode {
		if err := unix.Fchmod(fd, mode); err != nil {
			return nil, &pathError{"chmod", p, err}
		}
		changed = true
	}
	return proto.ChangeResult{Changed: changed}, nil
}

// mkdirAll creates p (and, with parents, its missing ancestors) inside the
// root. An existing directory is not an error.
func mkdirAll(rootfd int, p string, mode uint32, parents bool) (bool, error) {
	if p == "/" {
		return false, nil
	}
	if !parents {
		return mkdirOne(rootfd, p, mode)
	}
	changed := false
	cur := ""
	for _, part := range strings.Split(strings.Trim(p, "/"), "/") {
		cur += "/" + part
		m := uint32(0o755)
		if cur == p {
			m = mode
		}
		c, err := mkdirOne(rootfd, cur, m)
		if err != nil {
			return changed, err
		}
		changed = changed || c
	}
	return changed, nil
}

func mkdirOne(rootfd int, p string, mode uint32) (bool, error) {
	dirfd, base, err := openParent(rootfd, p)
	if err != nil {
		return false, err
	}
	defer unix.Close(dirfd)
	err = unix.Mkdirat(dirfd, base, mode)
	if err == nil {
		return true, nil
	}
	if err != unix.EEXIST {
		return false, &pathError{"mkdir", p, err}
	}
	// Existing: fine if it is a directory, or a symlink to one inside the root.
	fd, oerr := openInRoot(rootfd, p, unix.O_PATH|unix.O_DIRECTORY, 0)
	if oerr != nil {
		return false, &pathError{"mkdir", p, unix.ENOTDIR}
	}
	unix.Close(fd)
	return false, nil
}

func (a *Agent) handleDelete(_ context.Context, _ *stream, raw json.RawMessage) (any, error) {
	args, err := decode[proto.DeleteArgs](raw)
	if err != nil {
		return nil, err
	}
	rootfd, err := a.root()
	if err != nil {
		return nil, err
	}
	dirfd, base, err := openParent(rootfd, args.Path)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return proto.ChangeResult{Changed: false}, nil
		}
		return nil, err
	}
	defer unix.Close(dirfd)
	var s unix.Stat_t
	if err := unix.Fstatat(dirfd, base, &s, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if err == unix.ENOENT {
			return proto.ChangeResult{Changed: false}, nil
		}
		return nil, &pathError{"stat", args.Path, err}
	}
	if s.Mode&unix.S_IFMT == unix.S_IFDIR {
		if !args.Recursive {
			if err := unix.Unlinkat(dirfd, base, unix.AT_REMOVEDIR); err != nil {
				return nil, &pathError{"rmdir", args.Path, err}
			}
		} else if err := removeTree(dirfd, base); err != nil {
			return nil, &pathError{"remove", args.Path, err}
		}
	} else if err := unix.Unlinkat(dirfd, base, 0); err != nil {
		return nil, &pathError{"unlink", args.Path, err}
	}
	return proto.ChangeResult{Changed: true}, nil
}

// removeTree deletes name under dirfd without ever following a symlink.
func removeTree(dirfd int, name string) error {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if err == unix.ENOTDIR || err == unix.ELOOP {
			return unix.Unlinkat(dirfd, name, 0)
		}
		return err
	}
	d := os.NewFile(uintptr(fd), name)
	for {
		names, rerr := d.Readdirnames(256)
		for _, n := range names {
			var s unix.Stat_t
			if err := unix.Fstatat(fd, n, &s, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				d.Close()
				return err
			}
			if s.Mode&unix.S_IFMT == unix.S_IFDIR {
				if err := removeTree(fd, n); err != nil {
					d.Close()
					return err
				}
			} else if err := unix.Unlinkat(fd, n, 0); err != nil {
				d.Close()
				return err
			}
		}
		if rerr != nil {
			break
		}
	}
	d.Close()
	return unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR)
}
