package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/imgbake/imgbake/appliance"

	"golang.org/x/sys/unix"

	"github.com/imgbake/imgbake/appliance/proto"
)

// A session is a background process (`imgbake session serve`, started by
// `session start`) that owns one booted appliance with the image mounted
// on a private overlay. Clients talk to it over a unix socket in a private
// directory: one connection per request, framed like the agent channel
// (appliance/proto): the client sends a TCall frame holding a JSON
// sessionRequest, then TData/TEOF for stdin and TCancel to stop the
// request; the session answers with TStdout/TStderr/TData and finally a
// TResult frame holding a JSON sessionResult.

// ExitSession is `session exec`'s exit code when the session itself failed
// (not the command), as ssh uses 255.
const ExitSession = 255

// Files in a session's directory.
const (
	sessSock = "sock"
	sessInfo = "info.json"
	sessLog  = "log"
)

// Session states in info.json.
const (
	stateStarting = "starting"
	stateReady    = "ready"
	stateStopping = "stopping"
)

var sessionNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,47}$`)

func checkSessionName(name string) error {
	if !sessionNameRE.MatchString(name) {
		return usageErr("session name %q: use 1-48 letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	return nil
}

// sessionsBase is the private directory holding one directory per session:
// $XDG_RUNTIME_DIR/imgbake/sessions, or $TMPDIR/imgbake-UID/sessions. Both
// levels must be directories owned by this user and closed to others.
func sessionsBase() (string, error) {
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
		if err := checkPrivate(d); err != nil {
			return "", err
		}
	}
	return dir, nil
}

func checkPrivate(dir string) error {
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

func procAlive(id string) bool {
	pid, _, _ := strings.Cut(id, " ")
	n, err := strconv.Atoi(pid)
	if err != nil || n <= 0 {
		return false
	}
	cur, err := appliance.ProcessID(n)
	return err == nil && cur == id
}

// sessionDisk is one image a session holds, identified by device and inode
// so two paths to the same file are recognized.
type sessionDisk struct {
	Path string `json:"path"`
	Dev  uint64 `json:"dev"`
	Ino  uint64 `json:"ino"`
}

func diskIdentity(path string) (sessionDisk, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return sessionDisk{}, err
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return sessionDisk{}, err
	}
	st := fi.Sys().(*syscall.Stat_t)
	return sessionDisk{Path: abs, Dev: uint64(st.Dev), Ino: st.Ino}, nil
}

// sessionInfo is a session's info.json.
type sessionInfo struct {
	Name        string        `json:"name"`
	State       string        `json:"state"`
	PID         int           `json:"pid"`
	ProcID      string        `json:"proc_id"` // "pid starttime" of the process serving it
	Disks       []sessionDisk `json:"disks"`
	Started     time.Time     `json:"started"`
	OwnerPID    int           `json:"owner_pid,omitempty"`
	IdleTimeout string        `json:"idle_timeout,omitempty"`
	Network     bool          `json:"network,omitempty"`
}

func writeSessionInfo(dir string, info sessionInfo) error {
	b, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, ".info.tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("writing session info: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, sessInfo)); err != nil {
		return fmt.Errorf("writing session info: %w", err)
	}
	return nil
}

func readSessionInfo(dir string) (sessionInfo, error) {
	var info sessionInfo
	b, err := os.ReadFile(filepath.Join(dir, sessInfo))
	if err != nil {
		return info, err
	}
	if err := json.Unmarshal(b, &info); err != nil {
		return info, fmt.Errorf("%s: %w", filepath.Join(dir, sessInfo), err)
	}
	return info, nil
}

// sessionEntry is a session directory found under the base.
type sessionEntry struct {
	dir   string
	info  sessionInfo
	alive bool
}

// scanSessions lists the session directories. Those whose process is gone
// (killed outright) are removed, keeping their log as NAME.log; each one
// removed is reported through removed.
func scanSessions(base string, removed func(name string, info sessionInfo)) []sessionEntry {
	ents, err := os.ReadDir(base)
	if err != nil {
		return nil
	}
	var out []sessionEntry
	for _, e := range ents {
		if !e.IsDir() || !sessionNameRE.MatchString(e.Name()) {
			continue
		}
		dir := filepath.Join(base, e.Name())
		info, err := readSessionInfo(dir)
		if err != nil {
			// Being created right now, or left by a start that died
			// before writing anything.
			if fi, serr := os.Stat(dir); serr == nil && time.Since(fi.ModTime()) > 30*time.Second {
				removeSessionDir(base, e.Name())
				if removed != nil {
					removed(e.Name(), info)
				}
			}
			continue
		}
		if !procAlive(info.ProcID) {
			// Check again: the process may have just replaced a starting
			// info.json with its own.
			if info2, err := readSessionInfo(dir); err == nil && info2.ProcID != info.ProcID && procAlive(info2.ProcID) {
				out = append(out, sessionEntry{dir: dir, info: info2, alive: true})
				continue
			}
			removeSessionDir(base, e.Name())
			if removed != nil {
				removed(e.Name(), info)
			}
			continue
		}
		out = append(out, sessionEntry{dir: dir, info: info, alive: true})
	}
	return out
}

// removeSessionDir deletes a session's directory, keeping its log as
// BASE/NAME.log for later reading.
func removeSessionDir(base, name string) {
	dir := filepath.Join(base, name)
	_ = os.Rename(filepath.Join(dir, sessLog), filepath.Join(base, name+".log"))
	_ = os.RemoveAll(dir)
}

// sockAddr returns a path for the socket in dir that fits in sun_path:
// long paths go through /proc/self/fd/N of an O_PATH descriptor of dir,
// which the caller closes once bound or connected.
func sockAddr(dir string) (string, func(), error) {
	p := filepath.Join(dir, sessSock)
	if len(p) < 100 {
		return p, func() {}, nil
	}
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", nil, fmt.Errorf("opening %s: %w", dir, err)
	}
	return fmt.Sprintf("/proc/self/fd/%d/%s", fd, sessSock), func() { unix.Close(fd) }, nil
}

// sessionRequest is the JSON of a request's TCall frame.
type sessionRequest struct {
	Op string `json:"op"` // exec, put, fetch, run, status, stop

	// exec
	Argv      []string `json:"argv,omitempty"`
	Env       []string `json:"env,omitempty"`
	Dir       string   `json:"dir,omitempty"`
	TimeoutMS int64    `json:"timeout_ms,omitempty"`
	Stdin     bool     `json:"stdin,omitempty"` // TData/TEOF follow (exec, put from "-")

	// put, fetch: Host "" means the data travels on the connection.
	Host  string  `json:"host,omitempty"`
	Image string  `json:"image,omitempty"`
	Exact bool    `json:"exact,omitempty"` // the paths name the file itself, never a directory to put it into
	Mode  *uint32 `json:"mode,omitempty"`
	Owner string  `json:"owner,omitempty"`

	// run
	Recipe   string   `json:"recipe,omitempty"`
	VarsFile string   `json:"vars_file,omitempty"`
	Vars     []string `json:"vars,omitempty"`
	Force    bool     `json:"force,omitempty"`
	JSON     bool     `json:"json,omitempty"`
	Verbose  bool     `json:"verbose,omitempty"`

	// stop
	Discard bool `json:"discard,omitempty"`
}

// sessionResult is the JSON of the TResult frame that ends a request.
type sessionResult struct {
	RC       int            `json:"rc"`
	Signal   string         `json:"signal,omitempty"`
	TimedOut bool           `json:"timed_out,omitempty"`
	Error    string         `json:"error,omitempty"`
	Code     int            `json:"code,omitempty"` // exit code for Error
	Detail   string         `json:"detail,omitempty"`
	Status   *sessionStatus `json:"status,omitempty"`
}

// sessionStatus describes a running session (status op, session list).
type sessionStatus struct {
	Name        string    `json:"name"`
	PID         int       `json:"pid"`
	State       string    `json:"state"`
	Disks       []string  `json:"disks"`
	Started     time.Time `json:"started"`
	Requests    int64     `json:"requests"`
	Active      int       `json:"active"`
	IdleMS      int64     `json:"idle_ms"`
	IdleTimeout string    `json:"idle_timeout,omitempty"`
	OwnerPID    int       `json:"owner_pid,omitempty"`
	Boots       int64     `json:"boots"`
	Network     bool      `json:"network,omitempty"`
}

// frameConn serializes frame writes on a connection.
type frameConn struct {
	mu   sync.Mutex
	conn net.Conn
}

func (fc *frameConn) send(t proto.Type, payload []byte) error {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	return proto.WriteFrame(fc.conn, proto.Frame{Stream: 1, Type: t, Payload: payload})
}

func (fc *frameConn) sendJSON(t proto.Type, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return fc.send(t, b)
}

// stream is an io.Writer sending frames of one type, in chunks.
func (fc *frameConn) stream(t proto.Type) io.Writer { return streamWriter{fc, t} }

type streamWriter struct {
	fc *frameConn
	t  proto.Type
}

func (w streamWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		c := min(len(p), proto.ChunkSize)
		if err := w.fc.send(w.t, p[:c]); err != nil {
			return n, err
		}
		n += c
		p = p[c:]
	}
	return n, nil
}

// errNoSession means no running session has that name.
var errNoSession = errors.New("no such session")

// dialSession connects to the session name.
func dialSession(name string) (net.Conn, error) {
	if err := checkSessionName(name); err != nil {
		return nil, err
	}
	base, err := sessionsBase()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(base, name)
	if _, err := os.Lstat(dir); err != nil {
		return nil, fmt.Errorf("%w %q (imgbake session list shows the running ones)", errNoSession, name)
	}
	addr, closeDir, err := sockAddr(dir)
	if err != nil {
		return nil, err
	}
	defer closeDir()
	conn, err := net.DialTimeout("unix", addr, 10*time.Second)
	if err != nil {
		if info, ierr := readSessionInfo(dir); ierr == nil && !procAlive(info.ProcID) {
			return nil, fmt.Errorf("session %q is gone: its process (pid %d) exited; its log is %s", name, info.PID, filepath.Join(base, name+".log"))
		} else if ierr == nil && info.State != stateReady {
			return nil, fmt.Errorf("session %q is %s", name, info.State)
		}
		return nil, fmt.Errorf("connecting to session %q: %w", name, err)
	}
	return conn, nil
}

// callSession sends one request and streams its output: TStdout and TData
// to stdout, TStderr to stderr. stdin, if set, is sent as TData then TEOF.
// Cancelling ctx cancels the request in the session (the command inside
// the image is killed) and waits briefly for its result.
func callSession(ctx context.Context, name string, req sessionRequest, stdin io.Reader, stdout, stderr io.Writer) (sessionResult, error) {
	var res sessionResult
	conn, err := dialSession(name)
	if err != nil {
		return res, err
	}
	defer conn.Close()
	fc := &frameConn{conn: conn}
	req.Stdin = stdin != nil
	if err := fc.sendJSON(proto.TCall, req); err != nil {
		return res, fmt.Errorf("session %q: %w", name, err)
	}
	if stdin != nil {
		go func() {
			buf := make([]byte, proto.ChunkSize)
			for {
				n, err := stdin.Read(buf)
				if n > 0 {
					if fc.send(proto.TData, buf[:n]) != nil {
						return
					}
				}
				if err != nil {
					_ = fc.send(proto.TEOF, nil)
					return
				}
			}
		}()
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			_ = fc.send(proto.TCancel, nil)
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				conn.Close()
			}
		case <-done:
		}
	}()
	fr := proto.NewReader(bufio.NewReaderSize(conn, 1<<20))
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
			return res, fmt.Errorf("session %q went away before answering (%v): see its log", name, err)
		}
		var w io.Writer
		switch f.Type {
		case proto.TStdout, proto.TData:
			w = stdout
		case proto.TStderr:
			w = stderr
		case proto.TResult:
			if err := json.Unmarshal(f.Payload, &res); err != nil {
				return res, fmt.Errorf("session %q: bad result: %w", name, err)
			}
			return res, nil
		}
		if w != nil {
			if _, err := w.Write(f.Payload); err != nil {
				_ = fc.send(proto.TCancel, nil)
				return res, fmt.Errorf("writing output: %w", err)
			}
		}
	}
}

// parseUnixMode parses an octal mode such as 0644 or 4755.
func parseUnixMode(s string) (uint32, error) {
	m, err := strconv.ParseUint(s, 8, 32)
	if err != nil || m > 0o7777 {
		return 0, usageErr("--mode %q: expected an octal mode such as 0644", s)
	}
	return uint32(m), nil
}

func fileModeOf(m uint32) fs.FileMode {
	fm := fs.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		fm |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		fm |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		fm |= fs.ModeSticky
	}
	return fm
}
