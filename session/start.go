package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/imgbake/imgbake/appliance"
	"github.com/imgbake/imgbake/bake"
	"github.com/imgbake/imgbake/image"
	"github.com/imgbake/imgbake/session/api"
)

// StartConfig asks for a session.
type StartConfig struct {
	Name  string   // "" derives a free name from the first disk's file name
	Disks []string // the images, as given
	// Options open the disks (Logf and Notices stay with the caller: the
	// daemon logs to the session log).
	Options     bake.Options
	IdleTimeout time.Duration // stop and discard after this long without a request; 0: never
	OwnerPID    int           // stop and discard when this process exits; 0: none
	Reuse       bool          // a running session Name on the same disks is used (once ready) instead of refusing
	Attach      bool          // only use the running session Name on the same disks; never start one
	Executable  string        // the imgbake binary to run as `session serve`; "" is this process's own
}

// Started is the session Start started or reused.
type Started struct {
	Name   string
	Boot   string // how its appliance came up; "" when reused
	Reused bool
}

// Start starts the session sc asks for and returns once it is ready: it
// creates the session's directory, writes the daemon's Config there and
// runs `imgbake session serve` detached (its own session, no terminal,
// output to the session log), waiting for its report. A session already
// holding one of the disks is refused, naming it, unless it is the one to
// reuse or attach to.
func Start(ctx context.Context, sc StartConfig) (Started, error) {
	if err := bake.Check(sc.Disks, sc.Options); err != nil {
		return Started{}, err
	}
	if len(sc.Options.Keys) > 0 || sc.Options.KeyPrompt != nil {
		// The daemon reads its options from config.json: a key would be
		// written to disk.
		sc.Options.KeyPrompt = nil
		if len(sc.Options.Keys) > 0 {
			return Started{}, bake.Classify(bake.ErrUsage, errors.New("session start: --key is not supported for sessions (the daemon would have to store the passphrase); use imgbake run, shell or the other commands"))
		}
	}
	name := sc.Name
	if name != "" {
		if err := api.CheckName(name); err != nil {
			return Started{}, bake.Classify(bake.ErrUsage, err)
		}
	} else if sc.Reuse || sc.Attach {
		return Started{}, usageErr("--reuse and --attach need --name")
	}
	var want []api.Disk
	for _, d := range sc.Disks {
		sd, err := api.DiskOf(d)
		if err != nil {
			return Started{}, bake.Classify(bake.ErrImage, fmt.Errorf("%w: %s", image.ErrNotFound, d))
		}
		want = append(want, sd)
	}
	cfg := Config{Options: sc.Options, IdleTimeout: sc.IdleTimeout, OwnerPID: sc.OwnerPID}
	cfg.Options.Logf, cfg.Options.Notices = nil, nil
	// The daemon runs in /: relative paths would name other files there.
	for _, p := range []*string{&cfg.Options.Kernel, &cfg.Options.Output} {
		if *p != "" {
			abs, err := filepath.Abs(*p)
			if err != nil {
				return Started{}, err
			}
			*p = abs
		}
	}
	for _, d := range want {
		cfg.Disks = append(cfg.Disks, d.Path)
	}
	if sc.OwnerPID != 0 {
		var err error
		if cfg.OwnerID, err = appliance.ProcessID(sc.OwnerPID); err != nil {
			return Started{}, usageErr("--owner-pid %d: no such process", sc.OwnerPID)
		}
	}
	base, err := api.Base()
	if err != nil {
		return Started{}, bake.Classify(bake.ErrImage, err)
	}
	running := Scan(base, nil)
	if sc.Attach {
		if _, err := os.Stat(filepath.Join(base, name)); err != nil {
			return Started{}, imageErr("session %s is not running any more (its log: %s); its changes are lost", name, api.KeptLog(base, name))
		}
		return reuse(ctx, base, name, want)
	}
	for _, s := range running {
		if !sharesDisk(s.Info.Disks, want) {
			continue
		}
		if sc.Reuse && s.Info.Name == name {
			return reuse(ctx, base, name, want)
		}
		return Started{}, bake.Classify(bake.ErrImage, fmt.Errorf("%w: %s is already open in session %s (pid %d): use that session, or stop it first with `imgbake session stop %s`",
			image.ErrLocked, sharedPath(s.Info.Disks, want), s.Info.Name, s.Info.PID, s.Info.Name))
	}
	if name == "" {
		name = defaultName(base, sc.Disks[0])
	}
	dir := filepath.Join(base, name)
	if err := os.Mkdir(dir, 0o700); err != nil {
		if !errors.Is(err, os.ErrExist) {
			return Started{}, imageErr("creating the session directory: %w", err)
		}
		if sc.Reuse {
			return reuse(ctx, base, name, want)
		}
		return Started{}, usageErr("a session named %s is already running: pick another --name", name)
	}
	self, err := appliance.ProcessID(os.Getpid())
	if err == nil {
		err = api.WriteInfo(dir, api.Info{Name: name, State: api.StateStarting, PID: os.Getpid(), ProcID: self, Disks: want, Started: time.Now().UTC()})
	}
	if err != nil {
		os.RemoveAll(dir)
		return Started{}, bake.Classify(bake.ErrImage, err)
	}
	cfg.Name = name
	boot, err := spawn(ctx, base, cfg, sc.Executable)
	if err != nil {
		return Started{}, err
	}
	return Started{Name: name, Boot: boot}, nil
}

// readyFD is the daemon's descriptor for its report: the first of
// exec.Cmd.ExtraFiles.
const readyFD = 3

// spawn writes cfg into the new session's directory, starts the daemon on
// it and waits for its report. On failure the directory goes (its log is
// kept).
func spawn(ctx context.Context, base string, cfg Config, exe string) (_ string, err error) {
	dir := filepath.Join(base, cfg.Name)
	defer func() {
		if err != nil {
			removeDir(base, cfg.Name)
		}
	}()
	logFile, err := os.OpenFile(filepath.Join(dir, api.LogFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return "", imageErr("session log: %w", err)
	}
	defer logFile.Close()
	if exe == "" {
		if exe, err = os.Executable(); err != nil {
			return "", imageErr("finding the imgbake executable: %w", err)
		}
	}
	cfg.ReadyFD = readyFD
	if err := WriteConfig(dir, cfg); err != nil {
		return "", bake.Classify(bake.ErrImage, err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return "", err
	}
	defer pr.Close()
	// --name is for people: ps and the lock holder's message name the
	// session. The daemon reads everything else from --dir.
	cmd := exec.Command(exe, "session", "serve", "--name", cfg.Name, "--dir", dir)
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.ExtraFiles = []*os.File{pw}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		pw.Close()
		return "", imageErr("starting the session process: %w", err)
	}
	pw.Close()
	exited := make(chan struct{})
	// Reaped here when the caller lives on (tests run imgbake in-process);
	// a command-line start exits and leaves the session to init.
	go func() { _ = cmd.Wait(); close(exited) }()
	waitExit := func() {
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	reports := make(chan api.Report, 1)
	go func() {
		var r api.Report
		if err := json.NewDecoder(pr).Decode(&r); err != nil {
			r.Error, r.Code = "the session process exited before it was ready", bake.ExitImage
		}
		reports <- r
	}()
	var r api.Report
	select {
	case r = <-reports:
	case <-ctx.Done():
		// Interrupted while booting: the session goes too.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		waitExit()
		return "", ctx.Err()
	}
	if r.Error != "" {
		waitExit()
		code := r.Code
		if code == 0 {
			code = bake.ExitImage
		}
		msg := r.Error
		if tail := logTail(api.KeptLog(base, cfg.Name), filepath.Join(dir, api.LogFile)); tail != "" && strings.Contains(msg, "exited before") {
			msg += "; its log ends with:\n" + tail
		}
		return "", bake.WithCode(code, errors.New(msg))
	}
	return r.Boot, nil
}

// reuse waits for the running session name to be ready and checks it
// holds the same disks.
func reuse(ctx context.Context, base, name string, want []api.Disk) (Started, error) {
	deadline := time.Now().Add(5 * time.Minute)
	for {
		dir := filepath.Join(base, name)
		info, ierr := api.ReadInfo(dir)
		if ierr == nil && !sameDisks(info.Disks, want) {
			return Started{}, usageErr("session %s is running on %s, not on %s", name, diskPaths(info.Disks), diskPaths(want))
		}
		if ierr == nil && info.State == api.StateReady {
			res, err := Call(ctx, name, api.Request{Op: api.OpStatus}, nil, io.Discard, io.Discard)
			if err == nil && res.Status != nil {
				return Started{Name: name, Reused: true}, nil
			}
		}
		if _, err := os.Stat(dir); err != nil {
			return Started{}, imageErr("session %s failed to start (its log: %s)", name, api.KeptLog(base, name))
		}
		if ierr == nil && !procAlive(info.ProcID) {
			Scan(base, nil)
			return Started{}, imageErr("session %s is gone (its log: %s)", name, api.KeptLog(base, name))
		}
		if time.Now().After(deadline) {
			return Started{}, imageErr("session %s did not become ready", name)
		}
		select {
		case <-ctx.Done():
			return Started{}, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func sharesDisk(a, b []api.Disk) bool { return sharedPath(a, b) != "" }

// sharedPath is b's path of the first file in both a and b, or "".
func sharedPath(a, b []api.Disk) string {
	for _, x := range a {
		for _, y := range b {
			if x.Same(y) {
				return y.Path
			}
		}
	}
	return ""
}

func sameDisks(a, b []api.Disk) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].Same(b[i]) {
			return false
		}
	}
	return true
}

func diskPaths(ds []api.Disk) string {
	var p []string
	for _, d := range ds {
		p = append(p, d.Path)
	}
	return strings.Join(p, ", ")
}

// defaultName derives a free session name from the disk's file name.
func defaultName(base, disk string) string {
	n := strings.TrimSuffix(filepath.Base(disk), filepath.Ext(disk))
	n = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-' {
			return r
		}
		return '-'
	}, n)
	n = strings.TrimLeft(n, ".-_")
	if len(n) > 40 {
		n = n[:40]
	}
	if n == "" {
		n = "disk"
	}
	name := n
	for i := 2; ; i++ {
		if _, err := os.Lstat(filepath.Join(base, name)); err != nil {
			return name
		}
		name = fmt.Sprintf("%s-%d", n, i)
	}
}
