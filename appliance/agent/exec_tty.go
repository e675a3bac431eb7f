package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/creack/pty"

	"github.com/imgbake/imgbake/appliance/proto"
)

// runTTY runs an interactive command on a pseudo-terminal: the host's
// keystrokes go to the terminal as typed (Ctrl-C included, so the line
// discipline signals the command, not the appliance), its output comes back
// as TStdout, and TControl frames resize it.
func (a *Agent) runTTY(ctx context.Context, st *stream, root string, argv []string, args proto.ExecArgs) (*proto.ExecResult, error) {
	path := argv[0]
	if !hasSlash(path) {
		p, err := lookPathIn(rootOrSlash(root), path)
		if err != nil {
			return nil, err
		}
		path = p
	}
	master, slave, err := pty.Open()
	if err != nil {
		return nil, fmt.Errorf("exec: allocating a terminal: %w", err)
	}
	defer master.Close()
	if args.Rows > 0 && args.Cols > 0 {
		_ = pty.Setsize(master, &pty.Winsize{Rows: args.Rows, Cols: args.Cols})
	}
	term := args.Term
	if term == "" {
		term = "xterm"
	}
	dir := args.Dir
	if dir == "" {
		dir = "/"
	}
	env := append(append(append([]string{}, defaultEnv...), "TERM="+term), args.Env...)
	attr := &os.ProcAttr{
		Dir:   dir,
		Env:   env,
		Files: []*os.File{slave, slave, slave},
		Sys:   &syscall.SysProcAttr{Chroot: root, Setsid: true, Setctty: true, Ctty: 0},
	}
	pid, done, err := a.spawn(path, argv, attr)
	slave.Close()
	if err != nil {
		return nil, fmt.Errorf("exec %s: %w", argv[0], err)
	}
	st.onControl = func(payload []byte) {
		var ws proto.Winsize
		if json.Unmarshal(payload, &ws) == nil && ws.Rows > 0 && ws.Cols > 0 {
			_ = pty.Setsize(master, &pty.Winsize{Rows: ws.Rows, Cols: ws.Cols})
		}
	}
	go func() { _, _ = io.Copy(master, st) }()
	outDone := make(chan struct{})
	go func() {
		defer close(outDone)
		buf := make([]byte, 32<<10)
		w := frameWriter{st, proto.TStdout}
		for {
			n, err := master.Read(buf)
			if n > 0 {
				if _, werr := w.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return // EIO once the last holder of the terminal is gone
			}
		}
	}()
	ws, timedOut := waitOrKill(ctx, pid, done)
	// Whatever the shell left running on its terminal goes with it.
	_ = syscall.Kill(-pid, syscall.SIGHUP)
	select {
	case <-outDone:
	case <-time.After(2 * time.Second):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
	return execResult(ws, timedOut), nil
}

func rootOrSlash(root string) string {
	if root == "" {
		return "/"
	}
	return root
}
