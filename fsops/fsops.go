// Package fsops implements each operation a recipe or command can perform,
// on top of an open appliance session. Each operation is small, reports
// whether it changed the image, and never trusts what the image sends back.
package fsops

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/imgbake/imgbake/appliance"
	"github.com/imgbake/imgbake/appliance/proto"
	"github.com/imgbake/imgbake/internal/filemode"
)

// Result is the outcome of one operation.
type Result struct {
	Changed bool
	RC      int    // for commands
	Stdout  string // captured output of commands (bounded)
	Stderr  string
	Detail  string // short human summary, e.g. "12 files, 3.1 MB"
}

// Session is what an operation needs from an open image: commands, files
// and their metadata, bulk data, and what the agent found on the disks.
// *appliance.Session implements it over the channel to a running
// appliance; unit tests use the in-process agent of appliancetest or a
// fake. Operations only ever see this interface, never the VM behind it.
type Session interface {
	Exec(ctx context.Context, args proto.ExecArgs, stdin io.Reader, stdout, stderr io.Writer) (proto.ExecResult, error)
	ExecTTY(ctx context.Context, args proto.ExecArgs, stdin io.Reader, stdout io.Writer, resize <-chan proto.Winsize) (proto.ExecResult, error)

	WriteFile(ctx context.Context, args proto.WriteArgs, r io.Reader) (bool, error)
	ReadFile(ctx context.Context, path string, w io.Writer) (int64, error)
	ReadDir(ctx context.Context, path string) ([]proto.DirEntry, error)
	Stat(ctx context.Context, path string) (proto.StatResult, error)
	Realpath(ctx context.Context, path string) (proto.RealpathResult, error)
	Mkdir(ctx context.Context, path string, mode *fs.FileMode, owner string, parents bool) (bool, error)
	Delete(ctx context.Context, path string, recursive bool) (bool, error)
	Chmod(ctx context.Context, path string, mode uint32) (bool, error)
	Chown(ctx context.Context, path, owner string) (bool, error)
	Rename(ctx context.Context, src, dest string) (bool, error)
	Symlink(ctx context.Context, target, path string) (bool, error)
	Truncate(ctx context.Context, path string, create bool) (bool, error)

	TarIn(ctx context.Context, dest string, r io.Reader) (proto.TarResult, error)
	TarInStaged(ctx context.Context, dest string, staged appliance.StagedRange) (proto.TarResult, error)
	TarOut(ctx context.Context, path string, w io.Writer) (proto.TarResult, error)
	// StageData and NewStagedStream report ok=false when there is no data
	// disk; the caller then sends the data through the channel.
	StageData(ctx context.Context, f *os.File, size int64) (appliance.StagedRange, bool, error)
	NewStagedStream(ctx context.Context) (*appliance.StagedStream, bool)
	ReleaseData(rs []appliance.StagedRange)

	NetworkUp(ctx context.Context) (proto.NetworkResult, error)
	Inspect(ctx context.Context) (*proto.OSInfo, error)
	ListOS(ctx context.Context) (*proto.ListOSResult, error)
	Probe(ctx context.Context) ([]proto.Filesystem, error)
	FSUsage(ctx context.Context) ([]proto.FSUsage, error)
	FstabCheck(ctx context.Context) (*proto.FstabReport, error)
	ReplayLog(ctx context.Context, device, fstype string) error
	GrowPartition(ctx context.Context, disk string, number int) (proto.GrowPartitionResult, error)
}

var _ Session = (*appliance.Session)(nil)

// maxCapture bounds captured command output kept for reports.
const maxCapture = 1 << 20

// capture keeps the last maxCapture bytes written and tees to live.
type capture struct {
	buf  bytes.Buffer
	live io.Writer
}

func (c *capture) Write(p []byte) (int, error) {
	if c.live != nil {
		_, _ = c.live.Write(p)
	}
	c.buf.Write(p)
	if c.buf.Len() > 2*maxCapture {
		b := c.buf.Bytes()
		keep := append([]byte(nil), b[len(b)-maxCapture:]...)
		c.buf.Reset()
		c.buf.Write(keep)
	}
	return len(p), nil
}

func (c *capture) String() string {
	b := c.buf.Bytes()
	if len(b) > maxCapture {
		b = b[len(b)-maxCapture:]
	}
	return string(b)
}

// CommandError is a command that ran and exited non-zero.
type CommandError struct {
	RC       int
	Signal   string
	TimedOut bool
	Timeout  time.Duration
}

func (e *CommandError) Error() string {
	switch {
	case e.TimedOut:
		return fmt.Sprintf("timed out after %s and was killed", e.Timeout)
	case e.Signal != "":
		return fmt.Sprintf("killed by signal %s (rc %d)", e.Signal, e.RC)
	}
	return fmt.Sprintf("exited with rc %d", e.RC)
}

// RunOptions tune Run.
type RunOptions struct {
	Timeout time.Duration
	Env     []string
	Stdout  io.Writer // live copies of the output, e.g. for -v
	Stderr  io.Writer
	Stdin   io.Reader
}

// Run executes a shell command with /bin/sh -c inside the image (chroot).
// A non-zero exit is a *CommandError; Result still carries the output.
func Run(ctx context.Context, s Session, command string, o RunOptions) (Result, error) {
	return exec(ctx, s, proto.ExecArgs{Shell: command, Env: o.Env, TimeoutMS: o.Timeout.Milliseconds()}, o)
}

// Exec runs argv inside the image without a shell.
func Exec(ctx context.Context, s Session, argv []string, o RunOptions) (Result, error) {
	return exec(ctx, s, proto.ExecArgs{Argv: argv, Env: o.Env, TimeoutMS: o.Timeout.Milliseconds()}, o)
}

func exec(ctx context.Context, s Session, args proto.ExecArgs, o RunOptions) (Result, error) {
	out := &capture{live: o.Stdout}
	errb := &capture{live: o.Stderr}
	r, err := s.Exec(ctx, args, o.Stdin, out, errb)
	res := Result{Changed: true, RC: r.RC, Stdout: out.String(), Stderr: errb.String()}
	if err != nil {
		return res, err
	}
	if r.RC != 0 || r.TimedOut {
		return res, &CommandError{RC: r.RC, Signal: r.Signal, TimedOut: r.TimedOut, Timeout: o.Timeout}
	}
	return res, nil
}

// WriteOptions are a file's attributes.
type WriteOptions struct {
	Mode  *fs.FileMode // nil: keep the existing mode, or 0644 for a new file
	Owner string       // user[:group] resolved in the image; "" keeps it
}

// WriteFile atomically writes content to path inside the image. Writing
// identical content with identical attributes changes nothing.
func WriteFile(ctx context.Context, s Session, path string, content io.Reader, o WriteOptions) (Result, error) {
	args := proto.WriteArgs{Path: path, Owner: o.Owner}
	if o.Mode != nil {
		m := filemode.ToUnix(*o.Mode)
		args.Mode = &m
	}
	changed, err := s.WriteFile(ctx, args, content)
	return Result{Changed: changed}, err
}

// ReadFile returns a file's contents, refusing files over limit bytes.
func ReadFile(ctx context.Context, s Session, path string, limit int64) ([]byte, error) {
	var buf bytes.Buffer
	w := &limitWriter{w: &buf, n: limit}
	_, err := s.ReadFile(ctx, path, w)
	if err != nil {
		if w.over {
			return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
		}
		return nil, err
	}
	return buf.Bytes(), nil
}

type limitWriter struct {
	w    io.Writer
	n    int64
	over bool
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > l.n {
		l.over = true
		return 0, fmt.Errorf("limit exceeded")
	}
	l.n -= int64(len(p))
	return l.w.Write(p)
}

// Mkdir creates a directory and its parents, then applies mode and owner.
func Mkdir(ctx context.Context, s Session, path string, o WriteOptions) (Result, error) {
	changed, err := s.Mkdir(ctx, path, o.Mode, o.Owner, true)
	return Result{Changed: changed}, err
}

// Delete removes a file or a directory tree; a missing path is not an error.
func Delete(ctx context.Context, s Session, path string) (Result, error) {
	changed, err := s.Delete(ctx, path, true)
	return Result{Changed: changed}, err
}

// Hostname sets /etc/hostname and keeps /etc/hosts resolving the name, as
// virt-customize --hostname does.
func Hostname(ctx context.Context, s Session, name string) (Result, error) {
	short, _, _ := strings.Cut(name, ".")
	res, err := WriteFile(ctx, s, "/etc/hostname", strings.NewReader(short+"\n"), WriteOptions{})
	if err != nil {
		return res, err
	}
	hosts, err := ReadFile(ctx, s, "/etc/hosts", 1<<20)
	if err != nil && !isNotExist(err) {
		return res, err
	}
	updated := setHostsEntry(string(hosts), name, short)
	if updated != string(hosts) {
		r2, err := WriteFile(ctx, s, "/etc/hosts", strings.NewReader(updated), WriteOptions{})
		if err != nil {
			return res, err
		}
		res.Changed = res.Changed || r2.Changed
	}
	return res, nil
}

// setHostsEntry points the 127.0.1.1 line (Debian's convention for the
// machine's own name) at the new name, adding it when missing.
func setHostsEntry(hosts, fqdn, short string) string {
	names := fqdn
	if short != fqdn {
		names = fqdn + " " + short
	}
	want := "127.0.1.1\t" + names
	lines := strings.Split(hosts, "\n")
	for i, l := range lines {
		f := strings.Fields(l)
		if len(f) > 0 && f[0] == "127.0.1.1" {
			lines[i] = want
			return strings.Join(lines, "\n")
		}
	}
	if hosts != "" && !strings.HasSuffix(hosts, "\n") {
		hosts += "\n"
	}
	if hosts == "" {
		hosts = "127.0.0.1\tlocalhost\n"
	}
	return hosts + want + "\n"
}

func isNotExist(err error) bool {
	return err != nil && errors.Is(err, fs.ErrNotExist)
}

// OSInfo is what the agent found out about the image's operating system.
type OSInfo = proto.OSInfo

// The agent's descriptions of what it found, as operations return them.
type (
	Filesystem  = proto.Filesystem  // a block device and the filesystem on it
	DirEntry    = proto.DirEntry    // one entry of a directory listing
	FstabReport = proto.FstabReport // the image's fstab, entry by entry, checked against its devices
	MountResult = proto.MountResult // what was mounted where
	ExecArgs    = proto.ExecArgs    // a command to run in the image
	ExecResult  = proto.ExecResult  // how a command ended
	Winsize     = proto.Winsize     // a terminal's size
)

// Exists reports whether path exists in the image (a dangling symlink
// counts: lstat semantics).
func Exists(ctx context.Context, s Session, path string) (bool, error) {
	st, err := s.Stat(ctx, path)
	if err == nil {
		return st.Exists, nil
	}
	if isNotExist(err) {
		return false, nil
	}
	return false, err
}

// Sysroot is where the image is mounted inside the appliance, for commands
// that run outside the image's chroot (the rescue shell).
const Sysroot = proto.Sysroot
