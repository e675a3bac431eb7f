package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/imgbake/imgbake/appliance"
	"github.com/imgbake/imgbake/appliance/proto"
	"github.com/imgbake/imgbake/bake"
	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/internal/filemode"
	"github.com/imgbake/imgbake/recipes"
	"github.com/imgbake/imgbake/session/api"
)

// describeRequest is a short line for the session log (commands are cut
// short: they may be long, and the log is no place for their secrets).
func describeRequest(req api.Request) string {
	switch req.Op {
	case api.OpExec:
		s := strings.Join(req.Argv, " ")
		if len(s) > 100 {
			s = s[:100] + "…"
		}
		return "exec " + s
	case api.OpPut, api.OpFetch:
		h := req.Host
		if h == "" {
			h = "-"
		}
		if req.Op == api.OpPut {
			return fmt.Sprintf("put %s → %s", h, req.Image)
		}
		return fmt.Sprintf("fetch %s → %s", req.Image, h)
	case api.OpRun:
		return "run " + req.Recipe
	case api.OpService:
		return "service " + req.Service
	}
	return req.Op
}

func errResult(err error) api.Result {
	return api.Result{Error: err.Error(), Code: bake.ExitCode(err)}
}

// dispatch serves one request on the open image; stdin is the request's
// input (nil without Request.Stdin), fc its connection.
func (d *daemon) dispatch(ctx context.Context, req api.Request, stdin io.Reader, fc *api.FrameConn) api.Result {
	switch req.Op {
	case api.OpExec:
		return d.exec(ctx, req, stdin, fc)
	case api.OpPut:
		return d.put(ctx, req, stdin)
	case api.OpFetch:
		return d.fetch(ctx, req, fc)
	case api.OpRun:
		return d.run(ctx, req, fc)
	case api.OpService:
		return d.service(ctx, req, stdin, fc)
	}
	return api.Result{Error: fmt.Sprintf("unknown request %q", req.Op), Code: bake.ExitUsage}
}

func (d *daemon) exec(ctx context.Context, req api.Request, stdin io.Reader, fc *api.FrameConn) api.Result {
	if len(req.Argv) == 0 {
		return api.Result{Error: "exec: no command", Code: bake.ExitUsage}
	}
	args := proto.ExecArgs{Argv: req.Argv, Env: req.Env, Dir: req.Dir, TimeoutMS: req.TimeoutMS}
	r, err := d.img.Session().Exec(ctx, args, stdin, fc.Stream(proto.TStdout), fc.Stream(proto.TStderr))
	if err != nil {
		var re *appliance.RemoteError
		if errors.As(err, &re) {
			// The command could not be started, as a shell's "not found".
			return api.Result{RC: 127, Error: err.Error(), Code: 127}
		}
		return api.Result{Error: err.Error(), Code: api.ExitSession}
	}
	return api.Result{RC: r.RC, Signal: r.Signal, TimedOut: r.TimedOut}
}

// service relays one request to the service req.Service, starting it
// with req's command when it is not running.
func (d *daemon) service(ctx context.Context, req api.Request, stdin io.Reader, fc *api.FrameConn) api.Result {
	return serveService(ctx, d.svc, req, stdin, fc)
}

func serveService(ctx context.Context, svc *services, req api.Request, stdin io.Reader, fc *api.FrameConn) api.Result {
	if req.Service == "" || len(req.Argv) == 0 {
		return api.Result{Error: "service: no service name or command", Code: bake.ExitUsage}
	}
	if stdin == nil {
		return api.Result{Error: "service: no request", Code: bake.ExitUsage}
	}
	body, err := io.ReadAll(stdin)
	if err != nil {
		return api.Result{Error: "service: reading the request: " + err.Error(), Code: api.ExitSession}
	}
	p, err := svc.get(ctx, req.Service, proto.ExecArgs{Argv: req.Argv, Env: req.Env, Dir: req.Dir})
	if err != nil {
		return api.Result{Error: err.Error(), Code: api.ExitSession, NoService: errors.Is(err, errNoService)}
	}
	answer, err := svc.call(ctx, p, body)
	if err != nil {
		return api.Result{Error: err.Error(), Code: api.ExitSession}
	}
	if _, err := fc.Stream(proto.TData).Write(answer); err != nil {
		return api.Result{Error: err.Error(), Code: api.ExitSession}
	}
	return api.Result{}
}

// put copies into the image like cp: a directory, or a file put onto a
// directory, lands inside it; otherwise Image is the file written.
func (d *daemon) put(ctx context.Context, req api.Request, stdin io.Reader) api.Result {
	sess := d.img.Session()
	var o fsops.WriteOptions
	if req.Mode != nil {
		m := fileModeOf(*req.Mode)
		o.Mode = &m
	}
	o.Owner = req.Owner
	if req.Host == "" {
		if stdin == nil {
			return api.Result{Error: "put: no data", Code: bake.ExitUsage}
		}
		res, err := fsops.WriteFile(ctx, sess, req.Image, stdin, o)
		if err != nil {
			return errResult(fmt.Errorf("put %s: %w", req.Image, err))
		}
		return api.Result{Detail: changedWord(res.Changed)}
	}
	fi, err := os.Stat(req.Host)
	if err != nil {
		return api.Result{Error: err.Error(), Code: bake.ExitUsage}
	}
	into := fi.IsDir()
	if !into && !req.Exact {
		if strings.HasSuffix(req.Image, "/") {
			into = true
		} else if into, err = fsops.IsDir(ctx, sess, req.Image); err != nil {
			return errResult(err)
		}
	}
	if into {
		if req.Exact {
			return api.Result{Error: fmt.Sprintf("put --exact: %s is a directory", req.Host), Code: bake.ExitUsage}
		}
		if req.Mode != nil || req.Owner != "" {
			return api.Result{Error: "put: --mode and --owner apply to a single file written to an exact path", Code: bake.ExitUsage}
		}
		res, err := fsops.CopyIn(ctx, sess, req.Host, req.Image)
		if err != nil {
			return errResult(fmt.Errorf("put %s into %s: %w", req.Host, req.Image, err))
		}
		return api.Result{Detail: res.Detail}
	}
	res, err := fsops.Upload(ctx, sess, req.Host, req.Image, o)
	if err != nil {
		return errResult(fmt.Errorf("put %s: %w", req.Image, err))
	}
	return api.Result{Detail: changedWord(res.Changed)}
}

func changedWord(c bool) string {
	if c {
		return "changed"
	}
	return "unchanged"
}

// fileModeOf turns unix mode bits into an fs.FileMode (file-type bits
// are ignored).
func fileModeOf(m uint32) fs.FileMode { return filemode.FromUnix(m & filemode.Max) }

// fetch copies out of the image like cp; Host "" sends a file on the
// connection.
func (d *daemon) fetch(ctx context.Context, req api.Request, fc *api.FrameConn) api.Result {
	sess := d.img.Session()
	if req.Host == "" {
		if _, err := sess.ReadFile(ctx, req.Image, fc.Stream(proto.TData)); err != nil {
			return errResult(fmt.Errorf("fetch %s: %w", req.Image, err))
		}
		return api.Result{}
	}
	isDir, err := fsops.IsDir(ctx, sess, req.Image)
	if err != nil {
		return errResult(err)
	}
	into := isDir
	if !isDir && !req.Exact {
		fi, err := os.Stat(req.Host)
		into = strings.HasSuffix(req.Host, "/") || (err == nil && fi.IsDir())
	}
	if into {
		if req.Exact {
			return api.Result{Error: fmt.Sprintf("fetch --exact: %s is a directory in the image", req.Image), Code: bake.ExitUsage}
		}
		res, err := fsops.CopyOut(ctx, sess, req.Image, req.Host)
		if err != nil {
			return errResult(fmt.Errorf("fetch %s: %w", req.Image, err))
		}
		return api.Result{Detail: res.Detail}
	}
	if err := fetchFile(ctx, sess, req.Image, req.Host); err != nil {
		return errResult(err)
	}
	return api.Result{}
}

// fetchFile copies one image file to exactly the host path dest: written
// under a temporary name beside it and renamed into place, so a failure
// leaves nothing half written and a symlink at dest is replaced, never
// followed. The copy is 0644 whatever the image says.
func fetchFile(ctx context.Context, s fsops.Session, src, dest string) (err error) {
	if fi, serr := os.Lstat(dest); serr == nil && fi.IsDir() {
		return fmt.Errorf("fetch: %s is a directory", dest)
	}
	f, err := os.CreateTemp(filepath.Dir(dest), ".imgbake-fetch-*")
	if err != nil {
		return fmt.Errorf("fetch: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err := s.ReadFile(ctx, src, f); err != nil {
		return fmt.Errorf("fetch %s: %w", src, err)
	}
	if err := f.Chmod(0o644); err != nil {
		return fmt.Errorf("fetch: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("fetch: %w", err)
	}
	if err := os.Rename(f.Name(), dest); err != nil {
		return fmt.Errorf("fetch: %w", err)
	}
	return nil
}

// run applies a recipe to the session's image with bake's Apply, as
// `imgbake run` does on a fresh appliance, but neither commits nor
// discards: a failure leaves the steps done so far in the session (stop
// --discard drops everything).
func (d *daemon) run(ctx context.Context, req api.Request, fc *api.FrameConn) api.Result {
	start := time.Now()
	stdout, stderr := fc.Stream(proto.TStdout), fc.Stream(proto.TStderr)
	rec, err := bake.LoadRecipe(req.Recipe, req.VarsFile, req.Vars)
	if err != nil {
		var el recipes.ErrorList
		if errors.As(err, &el) {
			for _, e := range el {
				fmt.Fprintln(stderr, e.Error())
			}
		}
		return api.Result{Error: err.Error(), Code: bake.ExitUsage}
	}
	events := bake.NewTextEvents(stdout, req.Verbose)
	if req.JSON {
		events = bake.NewJSONEvents(stdout)
	}
	ao := bake.ApplyOptions{Force: req.Force, Events: events}
	if req.Verbose {
		ao.Live = stderr
	}
	applied, err := d.img.Apply(ctx, rec, ao)
	if err != nil {
		if applied.Started {
			events.RunEnd(rec, applied.Summary, time.Since(start), err, "kept in the session as far as it got (session stop --discard drops it)")
		}
		res := errResult(err)
		var se *bake.StepError
		if errors.As(err, &se) {
			res.Error = "" // already reported by the events
			res.RC = res.Code
		}
		return res
	}
	if applied.Started {
		events.RunEnd(rec, applied.Summary, time.Since(start), nil, "")
	}
	return api.Result{}
}
