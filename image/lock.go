package image

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Lock is an exclusive claim on one image, held by this process. It lives
// in a private runtime directory keyed by the image's device and inode, so
// nothing is written next to the user's image and two paths to the same
// file still collide. The holder's pid and command are recorded so the
// second run can name it.
type Lock struct {
	f    *os.File
	path string
}

func lockDir() (string, error) {
	base := os.Getenv("XDG_RUNTIME_DIR")
	if base == "" {
		base = filepath.Join(os.TempDir(), fmt.Sprintf("imgbake-%d", os.Getuid()))
	} else {
		base = filepath.Join(base, "imgbake")
	}
	dir := filepath.Join(base, "locks")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	// A pre-existing directory must be ours and private.
	fi, err := os.Lstat(base)
	if err != nil {
		return "", err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || int(st.Uid) != os.Getuid() || fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("lock directory %s is not a private directory owned by this user", base)
	}
	return dir, nil
}

// Acquire takes the lock for path or fails at once with ErrLocked naming
// the holder.
func Acquire(path string) (*Lock, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, path)
	}
	st := fi.Sys().(*syscall.Stat_t)
	dir, err := lockDir()
	if err != nil {
		return nil, err
	}
	lp := filepath.Join(dir, fmt.Sprintf("%x-%x.lock", st.Dev, st.Ino))
	f, err := os.OpenFile(lp, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening lock %s: %w", lp, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(lp)
		f.Close()
		h := strings.TrimSpace(string(holder))
		if h == "" {
			h = "another imgbake process"
		}
		return nil, fmt.Errorf("%w: %s is locked by %s", ErrLocked, path, h)
	}
	abs, _ := filepath.Abs(path)
	_ = f.Truncate(0)
	fmt.Fprintf(f, "pid %d (%s) since %s on %s\n", os.Getpid(), strings.Join(os.Args, " "),
		time.Now().Format(time.RFC3339), abs)
	return &Lock{f: f, path: lp}, nil
}

// Release drops the lock. The file stays (removing it would race with a
// waiter that opened it); it is tiny and private.
func (l *Lock) Release() {
	if l == nil || l.f == nil {
		return
	}
	_ = l.f.Truncate(0)
	_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	l.f.Close()
	l.f = nil
}

// HolderPID returns the pid recorded in a lock file, for diagnostics.
func HolderPID(text string) int {
	f := strings.Fields(text)
	if len(f) >= 2 && f[0] == "pid" {
		n, _ := strconv.Atoi(f[1])
		return n
	}
	return 0
}
