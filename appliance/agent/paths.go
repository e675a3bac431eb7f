package agent

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// Every path from the host is resolved inside the mounted image with
// RESOLVE_IN_ROOT: the image's symlinks (absolute or ../) behave as they do
// under chroot and can never lead into the appliance itself.

// cleanImagePath checks and normalizes an absolute image path.
func cleanImagePath(p string) (string, error) {
	if p == "" || p[0] != '/' {
		return "", fmt.Errorf("path %q is not absolute", p)
	}
	if strings.IndexByte(p, 0) >= 0 {
		return "", errors.New("path contains a NUL byte")
	}
	return path.Clean(p), nil
}

// openInRoot opens p (absolute, inside the image) relative to rootfd.
func openInRoot(rootfd int, p string, flags int, mode uint32) (int, error) {
	rel := strings.TrimLeft(p, "/")
	if rel == "" {
		rel = "."
	}
	how := unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC), Mode: uint64(mode), Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS}
	for {
		fd, err := unix.Openat2(rootfd, rel, &how)
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		return fd, err
	}
}

// openParent opens the directory containing p and returns it with p's base
// name, so the final component can be handled without following it.
func openParent(rootfd int, p string) (int, string, error) {
	p, err := cleanImagePath(p)
	if err != nil {
		return -1, "", err
	}
	if p == "/" {
		return -1, "", errors.New("operation not allowed on /")
	}
	dir, base := path.Split(p)
	fd, err := openInRoot(rootfd, dir, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return -1, "", &pathError{"open", dir, err}
	}
	return fd, base, nil
}

// pathError is like fs.PathError but keeps the errno visible to errors.As.
type pathError struct {
	op   string
	path string
	err  error
}

func (e *pathError) Error() string { return e.op + " " + e.path + ": " + e.err.Error() }
func (e *pathError) Unwrap() error { return e.err }
