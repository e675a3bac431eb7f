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

// copyWith copies r to fd through buf.
func copyWith(fd int, r io.Reader, buf []byte) (int64, error) {
	var n int64
	for {
		m, err := r.Read(buf)
		if m > 0 {
			w, werr := writeAll(fd, buf[:m])
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

// writeAll writes b to fd, retrying short writes and EINTR. Extraction
// writes through raw fds, not *os.File: os.NewFile costs an fcntl and a
// finalizer per file, which shows with thousands of small files.
func writeAll(fd int, b []byte) (int, error) {
	done := 0
	for done < len(b) {
		n, err := unix.Write(fd, b[done:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return done, err
		}
		if n == 0 {
			return done, io.ErrShortWrite
		}
		done += n
	}
	return done, nil
}
