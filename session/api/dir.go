package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Files in a session's directory, BASE/NAME (see Base).
const (
	SockFile   = "sock"        // the control socket
	InfoFile   = "info.json"   // Info, replaced atomically
	LogFile    = "log"         // the daemon's log (its stdout and stderr)
	ConfigFile = "config.json" // what the starter asks of the daemon (session.Config), 0600
)

// Session states in info.json.
const (
	StateStarting = "starting"
	StateReady    = "ready"
	StateStopping = "stopping"
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,47}$`)

// ErrName is an invalid session name.
var ErrName = errors.New("invalid session name")

// ValidName reports whether name can name a session (and its directory).
func ValidName(name string) bool { return nameRE.MatchString(name) }

// CheckName returns an error wrapping ErrName unless ValidName(name).
func CheckName(name string) error {
	if !ValidName(name) {
		return fmt.Errorf("%w %q: use 1-48 letters, digits, '.', '_' or '-', starting with a letter or digit", ErrName, name)
	}
	return nil
}

// Base is the private directory holding one directory per session:
// $XDG_RUNTIME_DIR/imgbake/sessions, or $TMPDIR/imgbake-UID/sessions. It
// is created if needed; both levels must be directories owned by this
// user and closed to others.
func Base() (string, error) {
	base := os.Getenv("XDG_RUNTIME_DIR")
	if base == "" {
		base = filepath.Join(os.TempDir(), fmt.Sprintf("imgbake-%d", os.Getuid()))
	} else {
		base = filepath.Join(base, "imgbake")
	}
	dir := filepath.Join(base, "sessions")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("creating the session directory: %w", err)
	}
	for _, d := range []string{base, dir} {
		if err := CheckPrivate(d); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// CheckPrivate fails unless dir is a directory (not a symlink) owned by
// this user with no permissions for group or others.
func CheckPrivate(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("session directory: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || int(st.Uid) != os.Getuid() || fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%s is not a private directory owned by this user: refusing to keep sessions there", dir)
	}
	return nil
}

// KeptLog is where a session's log is kept once its directory is gone.
func KeptLog(base, name string) string { return filepath.Join(base, name+".log") }

// Disk is one image a session holds, identified by device and inode so
// two paths to the same file are recognized.
type Disk struct {
	Path string `json:"path"` // absolute
	Dev  uint64 `json:"dev"`
	Ino  uint64 `json:"ino"`
}

// DiskOf identifies the image at path.
func DiskOf(path string) (Disk, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return Disk{}, err
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return Disk{}, err
	}
	st := fi.Sys().(*syscall.Stat_t)
	return Disk{Path: abs, Dev: uint64(st.Dev), Ino: st.Ino}, nil
}

// Same reports whether d and e are the same file.
func (d Disk) Same(e Disk) bool { return d.Dev == e.Dev && d.Ino == e.Ino }

// Info is a session's info.json: written by the starter while the daemon
// is being started, then by the daemon itself.
type Info struct {
	Name        string    `json:"name"`
	State       string    `json:"state"`
	PID         int       `json:"pid"`
	ProcID      string    `json:"proc_id"` // "pid starttime" of the process serving it (appliance.ProcessID)
	Disks       []Disk    `json:"disks"`
	Started     time.Time `json:"started"`
	OwnerPID    int       `json:"owner_pid,omitempty"`
	IdleTimeout string    `json:"idle_timeout,omitempty"`
	Network     bool      `json:"network,omitempty"`
}

// WriteInfo replaces dir's info.json atomically.
func WriteInfo(dir string, info Info) error {
	b, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, ".info.tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("writing session info: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, InfoFile)); err != nil {
		return fmt.Errorf("writing session info: %w", err)
	}
	return nil
}

// ReadInfo reads dir's info.json.
func ReadInfo(dir string) (Info, error) {
	var info Info
	b, err := os.ReadFile(filepath.Join(dir, InfoFile))
	if err != nil {
		return info, err
	}
	if err := json.Unmarshal(b, &info); err != nil {
		return info, fmt.Errorf("%s: %w", filepath.Join(dir, InfoFile), err)
	}
	return info, nil
}

// SockAddr returns a path for the socket in dir that fits in sun_path:
// long paths go through /proc/self/fd/N of an O_PATH descriptor of dir,
// which the caller closes (the returned func) once bound or connected.
func SockAddr(dir string) (string, func(), error) {
	p := filepath.Join(dir, SockFile)
	if len(p) < 100 {
		return p, func() {}, nil
	}
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", nil, fmt.Errorf("opening %s: %w", dir, err)
	}
	return fmt.Sprintf("/proc/self/fd/%d/%s", fd, SockFile), func() { unix.Close(fd) }, nil
}
