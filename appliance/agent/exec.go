package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/imgbake/imgbake/appliance/proto"
)

// defaultEnv is what commands see inside the image: predictable, no host
// leakage, and DEBIAN_FRONTEND so package tools never prompt.
var defaultEnv = []string{
	"PATH=" + proto.DefaultPath,
	"HOME=/root",
	"LANG=C.UTF-8",
	"TERM=dumb",
	"DEBIAN_FRONTEND=noninteractive",
}

func (a *Agent) handleExec(ctx context.Context, st *stream, raw json.RawMessage) (any, error) {
	var args proto.ExecArgs
	if err := json.Unmarshal(raw, &args); err != nil {
		return nil, err
	}
	argv := args.Argv
	if args.Shell != "" {
		argv = []string{"/bin/sh", "-c", args.Shell}
	}
	if len(argv) == 0 {
		return nil, errors.New("exec: empty command")
	}
	root := a.sysroot
	if args.NoChroot || !a.isMounted() || a.noChroot {
		root = ""
	}
	if root == "" && !args.NoChroot && !a.noChroot {
		return nil, errors.New("exec: the image is not mounted")
	}
	if root != "" {
		a.commandRun()
		if err := a.commandNetwork(ctx); err != nil {
			return nil, err
		}
	}
	if args.TimeoutMS > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(args.TimeoutMS)*time.Millisecond)
		defer cancel()
	}
	if args.TTY {
		return a.runTTY(ctx, st, root, argv, args)
	}
	return a.runCommand(ctx, st, root, argv, args)
}

func (a *Agent) runCommand(ctx context.Context, st *stream, root string, argv []string, args proto.ExecArgs) (*proto.ExecResult, error) {
	path := argv[0]
	if root != "" {
		// Resolve the program inside the image; exec happens after chroot,
		// so the path must be valid there.
		if !hasSlash(path) {
			p, err := lookPathIn(root, path)
			if err != nil {
				return nil, err
			}
			path = p
		}
	} else if !hasSlash(path) {
		p, err := lookPathIn("/", path)
		if err != nil {
			return nil, err
		}
		path = p
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, err
	}
	var inR, inW *os.File
	stdin := devNull
	if args.Stdin {
		if inR, inW, err = os.Pipe(); err != nil {
			return nil, err
		}
		stdin = inR
	}
	dir := args.Dir
	if dir == "" {
		dir = "/"
	}
	env := append(append([]string{}, defaultEnv...), args.Env...)
	attr := &os.ProcAttr{
		Dir:   dir,
		Env:   env,
		Files: []*os.File{stdin, outW, errW},
		Sys:   &syscall.SysProcAttr{Chroot: root, Setsid: true},
	}
	if root == "" {
		attr.Dir = dir
	}
	pid, done, err := a.spawn(path, argv, attr)
	outW.Close()
	errW.Close()
	if inR != nil {
		inR.Close()
	}
	if err != nil {
		outR.Close()
		errR.Close()
		if inW != nil {
			inW.Close()
		}
		return nil, fmt.Errorf("exec %s: %w", argv[0], err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go pump(&wg, outR, frameWriter{st, proto.TStdout})
	go pump(&wg, errR, frameWriter{st, proto.TStderr})
	if inW != nil {
		go func() {
			_, _ = io.Copy(inW, st)
			inW.Close()
		}()
	}
	ws, timedOut := waitOrKill(ctx, pid, done)
	// Background children that keep the pipes open must not hang the step:
	// give the output a moment to drain, then kill what is left of the session.
	waitCh := make(chan struct{})
	go func() { wg.Wait(); close(waitCh) }()
	select {
	case <-waitCh:
	case <-time.After(2 * time.Second):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-waitCh
	}
	return execResult(ws, timedOut), nil
}

// waitOrKill waits for the command, killing its whole session (setsid, so
// shells' children go too) when ctx ends first.
func waitOrKill(ctx context.Context, pid int, done <-chan syscall.WaitStatus) (syscall.WaitStatus, bool) {
	select {
	case ws := <-done:
		return ws, false
	case <-ctx.Done():
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		return <-done, errors.Is(ctx.Err(), context.DeadlineExceeded)
	}
}

// execResult turns a wait status into rc (128+signal when killed).
func execResult(ws syscall.WaitStatus, timedOut bool) *proto.ExecResult {
	res := &proto.ExecResult{TimedOut: timedOut}
	switch {
	case ws.Exited():
		res.RC = ws.ExitStatus()
	case ws.Signaled():
		res.RC = 128 + int(ws.Signal())
		res.Signal = ws.Signal().String()
	}
	return res
}

// spawn starts a process whose exit status the reaper delivers on done.
func (a *Agent) spawn(path string, argv []string, attr *os.ProcAttr) (int, <-chan syscall.WaitStatus, error) {
	return a.reaper.start(func() (int, error) {
		p, err := os.StartProcess(path, argv, attr)
		if err != nil {
			return 0, err
		}
		pid := p.Pid
		_ = p.Release()
		return pid, nil
	})
}

func pump(wg *sync.WaitGroup, r *os.File, w io.Writer) {
	defer wg.Done()
	defer r.Close()
	buf := make([]byte, 64<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				_, _ = io.Copy(io.Discard, r)
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func hasSlash(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			return true
		}
	}
	return false
}

// lookPathIn finds name on the default PATH below root. Below an image's
// root, symlinks resolve inside it, as they will after chroot: Alpine's
// applets are absolute links to /bin/busybox, which the appliance may not
// have, or have as a different program.
func lookPathIn(root, name string) (string, error) {
	dirs := proto.DefaultPathDirs()
	if root == "" || root == "/" {
		dirs = append(dirs, proto.RescueBinDir) // the appliance's own tools
		for _, dir := range dirs {
			p := dir + "/" + name
			fi, err := os.Stat(p)
			if err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
				return p, nil
			}
		}
		return "", fmt.Errorf("exec: %q: %w", name, os.ErrNotExist)
	}
	rootfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("exec: %q: %w", name, err)
	}
	defer unix.Close(rootfd)
	for _, dir := range dirs {
		p := dir + "/" + name
		fd, st, err := openPathInRoot(rootfd, p)
		if err != nil {
			continue
		}
		unix.Close(fd)
		if st.Mode&unix.S_IFMT == unix.S_IFREG && st.Mode&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("exec: %q: %w", name, os.ErrNotExist)
}
