package session

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/imgbake/imgbake/appliance/proto"
	"github.com/imgbake/imgbake/bake"
	"github.com/imgbake/imgbake/session/api"
)

// ErrNoSession means no running session has that name.
var ErrNoSession = errors.New("no such session")

// Dial connects to the session name's control socket.
func Dial(name string) (net.Conn, error) {
	if err := api.CheckName(name); err != nil {
		return nil, bake.Classify(bake.ErrUsage, err)
	}
	base, err := api.Base()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(base, name)
	if _, err := os.Lstat(dir); err != nil {
		return nil, fmt.Errorf("%w %q (imgbake session list shows the running ones)", ErrNoSession, name)
	}
	addr, closeDir, err := api.SockAddr(dir)
	if err != nil {
		return nil, err
	}
	defer closeDir()
	conn, err := net.DialTimeout("unix", addr, 10*time.Second)
	if err != nil {
		if info, ierr := api.ReadInfo(dir); ierr == nil && !procAlive(info.ProcID) {
			return nil, fmt.Errorf("session %q is gone: its process (pid %d) exited; its log is %s", name, info.PID, api.KeptLog(base, name))
		} else if ierr == nil && info.State != api.StateReady {
			return nil, fmt.Errorf("session %q is %s", name, info.State)
		}
		return nil, fmt.Errorf("connecting to session %q: %w", name, err)
	}
	return conn, nil
}

// Call sends one request to the session name and streams its output:
// TStdout and TData to stdout, TStderr to stderr. stdin, if set, is sent
// as TData then TEOF (and sets req.Stdin). Cancelling ctx cancels the
// request in the session (a command inside the image is killed) and waits
// briefly for its result. The error is about the session; the request's
// own failure is in the Result.
func Call(ctx context.Context, name string, req api.Request, stdin io.Reader, stdout, stderr io.Writer) (api.Result, error) {
	var res api.Result
	conn, err := Dial(name)
	if err != nil {
		return res, err
	}
	defer conn.Close()
	fc := api.NewFrameConn(conn)
	req.Stdin = stdin != nil
	if err := fc.SendJSON(proto.TCall, req); err != nil {
		return res, fmt.Errorf("session %q: %w", name, err)
	}
	if stdin != nil {
		go func() {
			buf := make([]byte, proto.ChunkSize)
			for {
				n, err := stdin.Read(buf)
				if n > 0 {
					if fc.Send(proto.TData, buf[:n]) != nil {
						return
					}
				}
				if err != nil {
					_ = fc.Send(proto.TEOF, nil)
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
			_ = fc.Send(proto.TCancel, nil)
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
				_ = fc.Send(proto.TCancel, nil)
				return res, fmt.Errorf("writing output: %w", err)
			}
		}
	}
}

// Do is Call for put, fetch and run: it returns the request's exit
// status when that was reported already (a failed step's events), and an
// error, with its exit code, when the request or the session failed: a
// missing session is bad usage (2), another session failure an image
// error (3).
func Do(ctx context.Context, name string, req api.Request, stdin io.Reader, stdout, stderr io.Writer) (rc int, err error) {
	res, err := Call(ctx, name, req, stdin, stdout, stderr)
	return resultStatus(name, res, err)
}

func resultStatus(name string, res api.Result, err error) (int, error) {
	if err != nil {
		if bake.Class(err) != nil {
			return 0, err
		}
		code := bake.ExitImage
		if errors.Is(err, ErrNoSession) {
			code = bake.ExitUsage
		}
		return 0, bake.WithCode(code, fmt.Errorf("session %s: %w", name, err))
	}
	if res.Error != "" {
		code := res.Code
		if code == 0 {
			code = bake.ExitImage
		}
		return 0, bake.WithCode(code, fmt.Errorf("session %s: %s", name, res.Error))
	}
	return res.RC, nil
}

// Exec runs req (an exec request) in the session name, passing its
// standard streams through, and returns the command's exit status. A
// failure of the session itself is an error with code api.ExitSession
// (255), a command that could not be started one with 127.
func Exec(ctx context.Context, name string, req api.Request, stdin io.Reader, stdout, stderr io.Writer) (rc int, err error) {
	req.Op = api.OpExec
	res, err := Call(ctx, name, req, stdin, stdout, stderr)
	if err != nil {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		return 0, bake.WithCode(api.ExitSession, fmt.Errorf("session %s: %w", name, err))
	}
	if res.Error != "" {
		return 0, bake.WithCode(res.Code, fmt.Errorf("session %s: %s", name, res.Error))
	}
	if res.TimedOut {
		fmt.Fprintf(stderr, "imgbake: session %s: the command timed out after %s and was killed\n", name, time.Duration(req.TimeoutMS)*time.Millisecond)
	}
	return res.RC, nil
}

// Run applies the recipe req names (a run request, with absolute paths)
// in the session name. The recipe is validated here first: an invalid
// one is bad usage and never reaches the session.
func Run(ctx context.Context, name string, req api.Request, stdout, stderr io.Writer) (rc int, err error) {
	req.Op = api.OpRun
	if _, err := bake.LoadRecipe(req.Recipe, req.VarsFile, req.Vars); err != nil {
		return 0, err
	}
	return Do(ctx, name, req, nil, stdout, stderr)
}

// Stop shuts the session name down, committing its changes (or dropping
// them with discard), and says which on stderr. The commit goes on even if
// ctx is cancelled meanwhile.
func Stop(ctx context.Context, name string, discard bool, stdout, stderr io.Writer) (rc int, err error) {
	res, err := Call(context.WithoutCancel(ctx), name, api.Request{Op: api.OpStop, Discard: discard}, nil, stdout, stderr)
	if err == nil && res.Error == "" {
		fmt.Fprintf(stderr, "imgbake: session %s: %s\n", name, res.Detail)
	}
	return resultStatus(name, res, err)
}

// List describes the running sessions: their status as they report it,
// or what their info.json says when they are not ready (or do not answer
// within 3 seconds). Sessions whose process is gone are removed and
// reported on notices.
func List(ctx context.Context, notices io.Writer) ([]api.Status, error) {
	base, err := api.Base()
	if err != nil {
		return nil, bake.Classify(bake.ErrImage, err)
	}
	list := []api.Status{}
	for _, s := range Scan(base, func(name string, info api.Info) {
		fmt.Fprintf(notices, "imgbake: removed session %s: its process (pid %d) is gone and its changes with it (log: %s)\n",
			name, info.PID, api.KeptLog(base, name))
	}) {
		st := api.Status{Name: s.Info.Name, PID: s.Info.PID, State: s.Info.State, Started: s.Info.Started,
			IdleTimeout: s.Info.IdleTimeout, OwnerPID: s.Info.OwnerPID, Network: s.Info.Network, IdleMS: -1}
		for _, d := range s.Info.Disks {
			st.Disks = append(st.Disks, d.Path)
		}
		if s.Info.State == api.StateReady {
			cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			res, err := Call(cctx, s.Info.Name, api.Request{Op: api.OpStatus}, nil, io.Discard, io.Discard)
			cancel()
			if err == nil && res.Status != nil {
				st = *res.Status
			}
		}
		list = append(list, st)
	}
	return list, nil
}
