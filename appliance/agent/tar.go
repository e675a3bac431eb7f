package agent

import (
	"archive/tar"
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/imgbake/imgbake/appliance/proto"
)

func fileFromFD(fd int, name string) *os.File { return os.NewFile(uintptr(fd), name) }

// handleTarIn extracts the host's tar stream into a directory of the image.
// Entry names are confined to the destination; the host side is trusted for
// content but not for path syntax.
func (a *Agent) handleTarIn(_ context.Context, st *stream, raw json.RawMessage) (any, error) {
	args, err := decode[proto.TarInArgs](raw)
	if err != nil {
		return nil, err
	}
	rootfd, err := a.root()
	if err != nil {
		return nil, err
	}
	dest, err := cleanImagePath(args.Dest)
	if err != nil {
		return nil, err
	}
	var src io.Reader = st
	if args.Staged != nil {
		r, err := a.openData(args.Staged.Offset, args.Staged.Size)
		if err != nil {
			return nil, err
		}
		defer r.Close()
		src = r
	}
	res, err := a.extractTar(rootfd, dest, src)
	if args.Staged == nil {
		// Consume the rest so the stream stays in sync after an error.
		_, _ = io.Copy(io.Discard, st)
	}
	return res, err
}

func (a *Agent) extractTar(rootfd int, dest string, r io.Reader) (proto.TarResult, error) {
	var res proto.TarResult
	if _, err := mkdirAll(rootfd, dest, 0o755, true); err != nil {
		return res, err
	}
	tr := tar.NewReader(r)
	buf := make([]byte, 1<<20)
	type dirMeta struct {
		path  string
		mode  uint32
		mtime unix.Timespec
	}
	var dirs []dirMeta
	// Entries come grouped by directory: keep the parent open between them
	// rather than resolving it from the root for every file.
	parents := parentCache{rootfd: rootfd, fd: -1}
	defer parents.close()
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return res, fmt.Errorf("reading tar stream: %w", err)
		}
		rel := path.Clean(strings.TrimLeft(h.Name, "/"))
		if rel == "." || rel == ".." || strings.HasPrefix(rel, "../") {
			continue
		}
		full := path.Join(dest, rel)
		dirfd, base, setgid, err := parents.open(full)
		if err != nil {
			return res, err
		}
		// Root-owned entries need no chown: we create them as root, unless
		// a setgid parent hands down its group.
		chown := h.Uid != 0 || h.Gid != 0 || setgid
		mode := uint32(h.Mode) & 0o7777
		ts := unix.NsecToTimespec(h.ModTime.UnixNano())
		switch h.Typeflag {
		case tar.TypeDir:
			if err := unix.Mkdirat(dirfd, base, 0o700); err != nil && err != unix.EEXIST {
				return res, &pathError{"mkdir", full, err}
			}
			if chown {
				_ = unix.Fchownat(dirfd, base, h.Uid, h.Gid, unix.AT_SYMLINK_NOFOLLOW)
			}
			dirs = append(dirs, dirMeta{full, mode, ts})
		case tar.TypeReg:
			fill := func(f *os.File) (int64, error) { return copyWith(f, tr, buf) }
			if off, ok := h.PAXRecords[proto.PAXDataOffset]; ok {
				fill = func(f *os.File) (int64, error) { return a.copyFromDataDisk(f, off, h.PAXRecords[proto.PAXDataSize]) }
			}
			n, err := writeRegular(dirfd, base, fill, mode, h.Uid, h.Gid, chown, ts)
			if err != nil {
				return res, &pathError{"write", full, err}
			}
			res.Files++
			res.Bytes += n
		case tar.TypeSymlink:
			_ = unix.Unlinkat(dirfd, base, 0)
			if err := unix.Symlinkat(h.Linkname, dirfd, base); err != nil {
				return res, &pathError{"symlink", full, err}
			}
			if chown {
				_ = unix.Fchownat(dirfd, base, h.Uid, h.Gid, unix.AT_SYMLINK_NOFOLLOW)
			}
			res.Files++
		default:
			// Devices, fifos and hard links are not copied in.
		}
	}
	// Directory modes last, so a read-only directory can still be filled.
	for i := len(dirs) - 1; i >= 0; i-- {
		d := dirs[i]
		fd, err := openInRoot(rootfd, d.path, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		if err != nil {
			continue
		}
		_ = unix.Fchmod(fd, d.mode)
		_ = unix.UtimesNanoAt(fd, "", []unix.Timespec{d.mtime, d.mtime}, unix.AT_EMPTY_PATH)
		unix.Close(fd)
	}
	return res, nil
}

// writeRegular creates base in dirfd with the data fill writes. The file
// is made new (O_EXCL), so an existing symlink at the target cannot
// redirect the data; a file already there is replaced.
func writeRegular(dirfd int, base string, fill func(*os.File) (int64, error), mode uint32, uid, gid int, chown bool, mtime unix.Timespec) (int64, error) {
	const flags = unix.O_WRONLY | unix.O_CREAT | unix.O_EXCL | unix.O_NOFOLLOW | unix.O_CLOEXEC
	// Created with its final mode when the umask leaves that as is (0644,
	// 0755, ...), saving a chmod per file; otherwise private until chmod.
	perm, exact := uint32(0o600), false
	if um, ok := processUmask(); ok && mode&0o7000 == 0 && mode&um == 0 {
		perm, exact = mode, true
	}
	fd, err := unix.Openat(dirfd, base, flags, perm)
	if err == unix.EEXIST {
		if err := unix.Unlinkat(dirfd, base, 0); err != nil && err != unix.ENOENT {
			return 0, err
		}
		fd, err = unix.Openat(dirfd, base, flags, perm)
	}
	if err != nil {
		return 0, err
	}
	f := fileFromFD(fd, base)
	defer f.Close()
	n, err := fill(f)
	if err != nil {
		return n, unwrapErrno(err)
	}
	if chown {
		_ = f.Chown(uid, gid)
	}
	// After chown, which clears setuid bits.
	if !exact {
		if err := unix.Fchmod(fd, mode); err != nil {
			return n, err
		}
	}
	// On the open file: no second path lookup.
	_ = unix.UtimesNanoAt(fd, "", []unix.Timespec{mtime, mtime}, unix.AT_EMPTY_PATH)
	return n, nil
}

// parentCache keeps the directory of the last entry open.
type parentCache struct {
	rootfd int
	dir    string
	fd     int
	setgid bool
}

// open returns the open parent directory of p, its base name and whether
// the parent is setgid. The fd stays owned by the cache.
func (c *parentCache) open(p string) (int, string, bool, error) {
	dir, base := path.Split(p)
	if c.fd >= 0 && dir == c.dir {
		return c.fd, base, c.setgid, nil
	}
	c.close()
	fd, base, err := openParent(c.rootfd, p)
	if err != nil {
		return -1, "", false, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, "", false, &pathError{"stat", dir, err}
	}
	c.dir, c.fd, c.setgid = dir, fd, st.Mode&unix.S_ISGID != 0
	return fd, base, c.setgid, nil
}

func (c *parentCache) close() {
	if c.fd >= 0 {
		unix.Close(c.fd)
		c.fd = -1
	}
}

// handleTarOut streams a file or directory tree as tar. Symlinks are sent as
// symlinks, never followed (except the top path itself, resolved in root).
func (a *Agent) handleTarOut(_ context.Context, st *stream, raw json.RawMessage) (any, error) {
	args, err := decode[proto.TarOutArgs](raw)
	if err != nil {
		return nil, err
	}
	rootfd, err := a.root()
	if err != nil {
		return nil, err
	}
	src, err := cleanImagePath(args.Path)
	if err != nil {
		return nil, err
	}
	fd, err := openInRoot(rootfd, src, unix.O_RDONLY, 0)
	if err != nil {
		return nil, &pathError{"open", src, err}
	}
	name := path.Base(src)
	if src == "/" {
		name = "."
	}
	// Aggregate tar's 512-byte headers into large frames.
	bw := bufio.NewWriterSize(frameWriter{st, proto.TData}, proto.ChunkSize)
	tw := tar.NewWriter(bw)
	var res proto.TarResult
	buf := make([]byte, 1<<20)
	err = tarWalk(tw, fd, name, &res, buf)
	if cerr := tw.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	if err := bw.Flush(); err != nil {
		return nil, err
	}
	if err := st.closeWrite(); err != nil {
		return nil, err
	}
	return res, nil
}

func timeFromTimespec(ts unix.Timespec) time.Time { return time.Unix(ts.Sec, ts.Nsec) }

// tarWalk writes fd (already open, owned by tarWalk) as name.
func tarWalk(tw *tar.Writer, fd int, name string, res *proto.TarResult, buf []byte) error {
	f := fileFromFD(fd, name)
	defer f.Close()
	var s unix.Stat_t
	if err := unix.Fstat(fd, &s); err != nil {
		return err
	}
	h := &tar.Header{
		Name:    name,
		Mode:    int64(s.Mode & 0o7777),
		Uid:     int(s.Uid),
		Gid:     int(s.Gid),
		ModTime: timeFromTimespec(s.Mtim),
		Format:  tar.FormatPAX,
	}
	switch s.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		h.Typeflag = tar.TypeReg
		h.Size = s.Size
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		n, err := io.CopyBuffer(tw, io.LimitReader(f, s.Size), buf)
		if err != nil {
			return fmt.Errorf("reading %s: %w", name, err)
		}
		if n != s.Size {
			return fmt.Errorf("reading %s: file shrank while copying", name)
		}
		res.Files++
		res.Bytes += n
		return nil
	case unix.S_IFDIR:
		h.Typeflag = tar.TypeDir
		h.Name = name + "/"
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		for {
			names, rerr := f.Readdirnames(512)
			for _, n := range names {
				if err := tarChild(tw, fd, n, path.Join(name, n), res, buf); err != nil {
					return err
				}
			}
			if rerr != nil {
				if errors.Is(rerr, io.EOF) {
					return nil
				}
				return rerr
			}
		}
	default:
		return nil
	}
}

func tarChild(tw *tar.Writer, dirfd int, base, name string, res *proto.TarResult, buf []byte) error {
	var s unix.Stat_t
	if err := unix.Fstatat(dirfd, base, &s, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	switch s.Mode & unix.S_IFMT {
	case unix.S_IFLNK:
		target := make([]byte, 4096)
		n, err := unix.Readlinkat(dirfd, base, target)
		if err != nil {
			return err
		}
		res.Files++
		return tw.WriteHeader(&tar.Header{
			Typeflag: tar.TypeSymlink, Name: name, Linkname: string(target[:n]),
			Mode: 0o777, Uid: int(s.Uid), Gid: int(s.Gid), ModTime: timeFromTimespec(s.Mtim), Format: tar.FormatPAX,
		})
	case unix.S_IFREG, unix.S_IFDIR:
		fd, err := unix.Openat(dirfd, base, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return &pathError{"open", name, err}
		}
		return tarWalk(tw, fd, name, res, buf)
	default:
		return nil // devices, sockets and fifos are not copied out
	}
}

var umaskOnce = sync.OnceValues(readUmask)

// processUmask is the agent's umask (fixed at startup), from
// /proc/self/status: calling umask(2) to read it would change it for a
// moment under concurrent handlers.
func processUmask() (uint32, bool) { return umaskOnce() }

func readUmask() (uint32, bool) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Umask:"); ok {
			u, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32)
			return uint32(u), err == nil
		}
	}
	return 0, false
}

// copyWith copies r to f through buf. Not io.CopyBuffer: *os.File's
// ReadFrom would take over and allocate its own 32 KiB buffer per file,
// which for thousands of small files is mostly garbage collection.
func copyWith(f *os.File, r io.Reader, buf []byte) (int64, error) {
	var n int64
	for {
		m, err := r.Read(buf)
		if m > 0 {
			w, werr := f.Write(buf[:m])
			n += int64(w)
			if werr != nil {
				return n, werr
			}
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}
