package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/imgbake/imgbake/appliance"
	"github.com/imgbake/imgbake/appliance/proto"
	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/recipes"
)

// startReport is what `session serve` tells `session start` on the ready
// pipe: the session is up, or why it is not.
type startReport struct {
	Error string `json:"error,omitempty"`
	Code  int    `json:"code,omitempty"`
	Boot  string `json:"boot,omitempty"`
}

// sessionDaemon is the process behind one session.
type sessionDaemon struct {
	name, dir, base string
	op              *opened
	info            sessionInfo
	network         bool
	idle            time.Duration
	ownerID         string

	mu         sync.Mutex
	active     int
	requests   int64
	lastActive time.Time
	stopping   bool
	wg         sync.WaitGroup

	reqCtx    context.Context
	reqCancel context.CancelFunc
	stopReq   chan stopRequest
	stopped   chan struct{}
	outcome   sessionResult // how it ended, for late stop requests
}

type stopRequest struct {
	discard bool
	reply   chan sessionResult
	sent    chan struct{} // closed once the reply is on its way to the client
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s %s\n", time.Now().Format("2006-01-02 15:04:05.000"), fmt.Sprintf(format, args...))
}

func sessionServeCommand() *cli.Command {
	return &cli.Command{
		Name:   "serve",
		Hidden: true,
		Usage:  "the background process of a session (started by session start)",
		Flags: append(diskFlags(),
			&cli.StringFlag{Name: "name", Required: true},
			&cli.StringFlag{Name: "dir", Required: true},
			&cli.IntFlag{Name: "ready-fd", Value: 3},
			&cli.BoolFlag{Name: "network"},
			&cli.DurationFlag{Name: "idle-timeout", Value: 15 * time.Minute},
			&cli.IntFlag{Name: "owner-pid"},
			&cli.StringFlag{Name: "owner-id"},
		),
		Action: func(c *cli.Context) error {
			stdio := Stdio{In: c.App.Reader, Out: c.App.Writer, Err: c.App.ErrWriter}
			return sessionServe(c, stdio)
		},
	}
}

func sessionServe(c *cli.Context, stdio Stdio) (err error) {
	ctx := c.Context
	signal.Ignore(syscall.SIGHUP, syscall.SIGPIPE)
	ready := os.NewFile(uintptr(c.Int("ready-fd")), "ready")
	report := func(r startReport) {
		if ready != nil {
			_ = json.NewEncoder(ready).Encode(r)
			ready.Close()
			ready = nil
		}
	}
	d := &sessionDaemon{name: c.String("name"), dir: c.String("dir"), network: c.Bool("network"),
		idle: c.Duration("idle-timeout"), ownerID: c.String("owner-id"),
		stopReq: make(chan stopRequest), stopped: make(chan struct{})}
	d.base = filepath.Dir(d.dir)
	started := false
	defer func() {
		if err != nil && !started {
			logf("session %s failed to start: %v", d.name, err)
			report(startReport{Error: err.Error(), Code: exitCode(ctx, err)})
			removeSessionDir(d.base, d.name)
		}
	}()
	if err := checkSessionName(d.name); err != nil {
		return err
	}
	if err := checkPrivate(d.dir); err != nil {
		return err
	}
	id, err := appliance.ProcessID(os.Getpid())
	if err != nil {
		return err
	}
	d.info = sessionInfo{Name: d.name, State: stateStarting, PID: os.Getpid(), ProcID: id, Started: time.Now().UTC(),
		OwnerPID: c.Int("owner-pid"), Network: d.network}
	if d.idle > 0 {
		d.info.IdleTimeout = d.idle.String()
	}
	for _, p := range c.StringSlice("add") {
		sd, err := diskIdentity(p)
		if err != nil {
			return fmt.Errorf("%w", err)
		}
		d.info.Disks = append(d.info.Disks, sd)
	}
	if err := writeSessionInfo(d.dir, d.info); err != nil {
		return err
	}
	if d.ownerID != "" && !procAlive(d.ownerID) {
		return usageErr("the owner process %d is gone already", d.info.OwnerPID)
	}
	logf("session %s: pid %d, disk(s) %s, owner pid %d, idle timeout %s, network %v", d.name, os.Getpid(),
		strings.Join(c.StringSlice("add"), ", "), d.info.OwnerPID, d.info.IdleTimeout, d.network)
	op, err := openImages(ctx, c, stdio, openOptions{network: d.network})
	if err != nil {
		return err
	}
	d.op = op
	defer func() {
		if d.op != nil {
			d.op.abort()
		}
	}()
	t := op.sess.Timings
	boot := fmt.Sprintf("qemu %s, agent ready %s (guest uptime %s), mounted %d filesystem(s) in %s, root %s",
		t.QEMUStarted.Round(time.Millisecond), t.Ready.Round(time.Millisecond), t.GuestUptime.Round(10*time.Millisecond),
		len(op.Mounts().Mounts), op.timings.mount.Round(time.Millisecond), op.Mounts().Root)
	logf("appliance booted (boot %d of this session): %s", appliance.Boots(), boot)

	addr, closeDir, err := sockAddr(d.dir)
	if err != nil {
		return err
	}
	ln, err := net.Listen("unix", addr)
	closeDir()
	if err != nil {
		return fmt.Errorf("listening on %s: %w", filepath.Join(d.dir, sessSock), err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	defer ln.Close()
	d.info.State = stateReady
	if err := writeSessionInfo(d.dir, d.info); err != nil {
		return err
	}
	d.reqCtx, d.reqCancel = context.WithCancel(context.WithoutCancel(ctx))
	defer d.reqCancel()
	d.lastActive = time.Now()
	go d.accept(ln)
	report(startReport{Boot: boot})
	started = true
	logf("ready")
	return d.loop(ctx, ln)
}

// loop waits for a stop: asked for, or forced by the owner's death, the
// idle timeout, a signal or the VM's death. Only an asked-for stop
// commits.
func (d *sessionDaemon) loop(ctx context.Context, ln net.Listener) error {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var (
		discard bool
		why     string
		asked   *stopRequest
	)
wait:
	for {
		select {
		case sr := <-d.stopReq:
			discard, asked = sr.discard, &sr
			why = "stop requested"
			break wait
		case <-ctx.Done():
			discard, why = true, "interrupted by a signal"
			break wait
		case <-d.op.sess.Done():
			discard, why = true, "the appliance VM exited unexpectedly"
			break wait
		case <-tick.C:
			if d.ownerID != "" && !procAlive(d.ownerID) {
				discard, why = true, fmt.Sprintf("the owner process %d exited", d.info.OwnerPID)
				break wait
			}
			d.mu.Lock()
			idle := d.active == 0 && d.idle > 0 && time.Since(d.lastActive) >= d.idle
			d.mu.Unlock()
			if idle {
				discard, why = true, fmt.Sprintf("idle for %s (--idle-timeout)", d.idle)
				break wait
			}
		}
	}
	res := d.stop(ln, discard, why)
	if asked != nil {
		asked.reply <- res
		select {
		case <-asked.sent:
		case <-time.After(5 * time.Second):
		}
	}
	if res.Error != "" {
		return withCode(res.Code, errors.New(res.Error))
	}
	return nil
}

// stop ends the session: no new requests, running ones cancelled, then the
// appliance is shut down and the overlay committed (or discarded).
func (d *sessionDaemon) stop(ln net.Listener, discard bool, why string) sessionResult {
	d.mu.Lock()
	d.stopping = true
	active := d.active
	d.info.State = stateStopping
	info := d.info
	d.mu.Unlock()
	_ = writeSessionInfo(d.dir, info)
	ln.Close()
	action := "committing"
	if discard {
		action = "discarding"
	}
	logf("stopping: %s; %s the changes; %d request(s) served, %d running", why, action, d.requests, active)
	d.reqCancel()
	waited := make(chan struct{})
	go func() { d.wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(15 * time.Second):
		logf("requests still running after 15s; going on")
	}
	t := time.Now()
	disks := make([]string, len(d.info.Disks))
	for i, sd := range d.info.Disks {
		disks[i] = sd.Path
	}
	var res sessionResult
	err := d.op.finish(context.Background(), !discard)
	d.op = nil
	switch {
	case err != nil:
		res = sessionResult{Error: fmt.Sprintf("%s: the changes were not committed: %v", why, err), Code: exitCode(context.Background(), err)}
		logf("stop failed after %s: %v", time.Since(t).Round(time.Millisecond), err)
	case discard:
		res = sessionResult{Detail: fmt.Sprintf("discarded (%s); %s unchanged", why, strings.Join(disks, ", "))}
		if why != "stop requested" {
			// Whoever asked for a commit meanwhile must not think it happened.
			res.Error, res.Code = fmt.Sprintf("session %s was stopped: %s; its changes were discarded", d.name, why), ExitImage
		}
		logf("discarded in %s", time.Since(t).Round(time.Millisecond))
	default:
		res = sessionResult{Detail: "committed into " + strings.Join(disks, ", ")}
		logf("committed in %s", time.Since(t).Round(time.Millisecond))
	}
	logf("session %s ended: %d request(s), %d appliance boot(s)", d.name, d.requests, appliance.Boots())
	d.outcome = res
	removeSessionDir(d.base, d.name)
	close(d.stopped)
	return res
}

func (d *sessionDaemon) accept(ln net.Listener) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		if !peerAllowed(conn) {
			conn.Close()
			continue
		}
		go d.handle(conn)
	}
}

// peerAllowed admits only this user (and root) even though the socket's
// directory is private already.
func peerAllowed(conn net.Conn) bool {
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return false
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return false
	}
	var cred *syscall.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil || cerr != nil {
		return false
	}
	return int(cred.Uid) == os.Getuid() || cred.Uid == 0
}

// begin registers a request; it fails once the session is stopping.
func (d *sessionDaemon) begin() (func(), error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopping {
		return nil, errors.New("the session is stopping")
	}
	d.active++
	d.requests++
	d.lastActive = time.Now()
	d.wg.Add(1)
	return func() {
		d.mu.Lock()
		d.active--
		d.lastActive = time.Now()
		d.mu.Unlock()
		d.wg.Done()
	}, nil
}

func (d *sessionDaemon) handle(conn net.Conn) {
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	fr := proto.NewReader(bufio.NewReader(conn))
	f, err := fr.ReadFrame()
	if err != nil || f.Type != proto.TCall {
		return
	}
	_ = conn.SetReadDeadline(time.Time{})
	fc := &frameConn{conn: conn}
	var req sessionRequest
	if err := json.Unmarshal(f.Payload, &req); err != nil {
		_ = fc.sendJSON(proto.TResult, sessionResult{Error: "bad request: " + err.Error(), Code: ExitUsage})
		return
	}
	switch req.Op {
	case "stop":
		sent := make(chan struct{})
		defer close(sent)
		_ = fc.sendJSON(proto.TResult, d.requestStop(req.Discard, sent))
		return
	case "status":
		_ = fc.sendJSON(proto.TResult, sessionResult{Status: d.status()})
		return
	}
	done, err := d.begin()
	if err != nil {
		_ = fc.sendJSON(proto.TResult, sessionResult{Error: err.Error(), Code: ExitImage})
		return
	}
	defer done()
	ctx, cancel := context.WithCancel(d.reqCtx)
	defer cancel()
	var stdin *io.PipeReader
	var stdinW *io.PipeWriter
	if req.Stdin {
		stdin, stdinW = io.Pipe()
	}
	go func() {
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				// The client went away (or was killed): stop its request.
				cancel()
				if stdinW != nil {
					stdinW.CloseWithError(errors.New("the client went away"))
				}
				return
			}
			switch f.Type {
			case proto.TData:
				if stdinW != nil {
					_, _ = stdinW.Write(f.Payload)
				}
			case proto.TEOF:
				if stdinW != nil {
					stdinW.Close()
				}
			case proto.TCancel:
				cancel()
			}
		}
	}()
	t := time.Now()
	res := d.dispatch(ctx, req, stdin, fc)
	if stdin != nil {
		stdin.CloseWithError(io.ErrClosedPipe)
	}
	if res.Error != "" {
		logf("%s failed after %s: %s", describeRequest(req), time.Since(t).Round(time.Millisecond), res.Error)
	} else {
		logf("%s: rc %d in %s", describeRequest(req), res.RC, time.Since(t).Round(time.Millisecond))
	}
	_ = fc.sendJSON(proto.TResult, res)
}

// requestStop hands the stop to the main loop and waits for the outcome.
func (d *sessionDaemon) requestStop(discard bool, sent chan struct{}) sessionResult {
	sr := stopRequest{discard: discard, reply: make(chan sessionResult, 1), sent: sent}
	select {
	case d.stopReq <- sr:
		return <-sr.reply
	case <-d.stopped:
		res := d.outcome
		if !discard && res.Error == "" && strings.HasPrefix(res.Detail, "discarded") {
			res.Error, res.Code = "the session was already stopped: "+res.Detail, ExitImage
		}
		return res
	}
}

func (d *sessionDaemon) status() *sessionStatus {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := &sessionStatus{Name: d.name, PID: os.Getpid(), State: d.info.State, Started: d.info.Started, Requests: d.requests,
		Active: d.active, IdleTimeout: d.info.IdleTimeout, OwnerPID: d.info.OwnerPID, Boots: appliance.Boots(), Network: d.network}
	if d.active == 0 {
		st.IdleMS = time.Since(d.lastActive).Milliseconds()
	}
	for _, sd := range d.info.Disks {
		st.Disks = append(st.Disks, sd.Path)
	}
	return st
}

// describeRequest is a short line for the session log (commands are cut
// short: they may be long, and the log is no place for their secrets).
func describeRequest(req sessionRequest) string {
	switch req.Op {
	case "exec":
		s := strings.Join(req.Argv, " ")
		if len(s) > 100 {
			s = s[:100] + "…"
		}
		return "exec " + s
	case "put", "fetch":
		h := req.Host
		if h == "" {
			h = "-"
		}
		if req.Op == "put" {
			return fmt.Sprintf("put %s → %s", h, req.Image)
		}
		return fmt.Sprintf("fetch %s → %s", req.Image, h)
	case "run":
		return "run " + req.Recipe
	}
	return req.Op
}

func errResult(ctx context.Context, err error) sessionResult {
	return sessionResult{Error: err.Error(), Code: exitCode(ctx, err)}
}

func (d *sessionDaemon) dispatch(ctx context.Context, req sessionRequest, stdin io.Reader, fc *frameConn) sessionResult {
	sess := d.op.sess
	switch req.Op {
	case "exec":
		if len(req.Argv) == 0 {
			return sessionResult{Error: "exec: no command", Code: ExitUsage}
		}
		args := proto.ExecArgs{Argv: req.Argv, Env: req.Env, Dir: req.Dir, TimeoutMS: req.TimeoutMS}
		var in io.Reader
		if req.Stdin {
			in = stdin
		}
		r, err := sess.Exec(ctx, args, in, fc.stream(proto.TStdout), fc.stream(proto.TStderr))
		if err != nil {
			var re *appliance.RemoteError
			if errors.As(err, &re) {
				// The command could not be started, as a shell's "not found".
				return sessionResult{RC: 127, Error: err.Error(), Code: 127}
			}
			return sessionResult{Error: err.Error(), Code: ExitSession}
		}
		return sessionResult{RC: r.RC, Signal: r.Signal, TimedOut: r.TimedOut}
	case "put":
		return d.put(ctx, req, stdin)
	case "fetch":
		return d.fetch(ctx, req, fc)
	case "run":
		return d.runRecipe(ctx, req, fc)
	}
	return sessionResult{Error: fmt.Sprintf("unknown request %q", req.Op), Code: ExitUsage}
}

// imageDir reports whether path is a directory in the image (following a
// final symlink inside the image).
func imageDir(ctx context.Context, s *appliance.Session, path string) (bool, error) {
	st, err := s.Stat(ctx, path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return false, err
	}
	if !st.Exists {
		return false, nil
	}
	if fs.FileMode(st.Mode)&fs.ModeSymlink != 0 {
		rp, err := s.Realpath(ctx, path)
		if err != nil {
			return false, nil
		}
		if st, err = s.Stat(ctx, rp.Path); err != nil || !st.Exists {
			return false, nil
		}
	}
	return fs.FileMode(st.Mode).IsDir(), nil
}

func (d *sessionDaemon) put(ctx context.Context, req sessionRequest, stdin io.Reader) sessionResult {
	sess := d.op.sess
	var o fsops.WriteOptions
	if req.Mode != nil {
		m := fileModeOf(*req.Mode)
		o.Mode = &m
	}
	o.Owner = req.Owner
	if req.Host == "" {
		if stdin == nil {
			return sessionResult{Error: "put: no data", Code: ExitUsage}
		}
		res, err := fsops.WriteFile(ctx, sess, req.Image, stdin, o)
		if err != nil {
			return errResult(ctx, fmt.Errorf("put %s: %w", req.Image, err))
		}
		return sessionResult{Detail: changedWord(res.Changed)}
	}
	fi, err := os.Stat(req.Host)
	if err != nil {
		return sessionResult{Error: err.Error(), Code: ExitUsage}
	}
	into := fi.IsDir()
	if !into && !req.Exact {
		if strings.HasSuffix(req.Image, "/") {
			into = true
		} else if into, err = imageDir(ctx, sess, req.Image); err != nil {
			return errResult(ctx, err)
		}
	}
	if into {
		if req.Exact {
			return sessionResult{Error: fmt.Sprintf("put --exact: %s is a directory", req.Host), Code: ExitUsage}
		}
		if req.Mode != nil || req.Owner != "" {
			return sessionResult{Error: "put: --mode and --owner apply to a single file written to an exact path", Code: ExitUsage}
		}
		res, err := fsops.CopyIn(ctx, sess, req.Host, req.Image)
		if err != nil {
			return errResult(ctx, fmt.Errorf("put %s into %s: %w", req.Host, req.Image, err))
		}
		return sessionResult{Detail: res.Detail}
	}
	res, err := fsops.Upload(ctx, sess, req.Host, req.Image, o)
	if err != nil {
		return errResult(ctx, fmt.Errorf("put %s: %w", req.Image, err))
	}
	return sessionResult{Detail: changedWord(res.Changed)}
}

func changedWord(c bool) string {
	if c {
		return "changed"
	}
	return "unchanged"
}

func (d *sessionDaemon) fetch(ctx context.Context, req sessionRequest, fc *frameConn) sessionResult {
	sess := d.op.sess
	if req.Host == "" {
		if _, err := sess.ReadFile(ctx, req.Image, fc.stream(proto.TData)); err != nil {
			return errResult(ctx, fmt.Errorf("fetch %s: %w", req.Image, err))
		}
		return sessionResult{}
	}
	isDir, err := imageDir(ctx, sess, req.Image)
	if err != nil {
		return errResult(ctx, err)
	}
	into := isDir
	if !isDir && !req.Exact {
		fi, err := os.Stat(req.Host)
		into = strings.HasSuffix(req.Host, "/") || (err == nil && fi.IsDir())
	}
	if into {
		if req.Exact {
			return sessionResult{Error: fmt.Sprintf("fetch --exact: %s is a directory in the image", req.Image), Code: ExitUsage}
		}
		res, err := fsops.CopyOut(ctx, sess, req.Image, req.Host)
		if err != nil {
			return errResult(ctx, fmt.Errorf("fetch %s: %w", req.Image, err))
		}
		return sessionResult{Detail: res.Detail}
	}
	if err := fetchFile(ctx, sess, req.Image, req.Host); err != nil {
		return errResult(ctx, err)
	}
	return sessionResult{}
}

// fetchFile copies one image file to exactly the host path dest: written
// under a temporary name beside it and renamed into place, so a failure
// leaves nothing half written and a symlink at dest is replaced, never
// followed. The copy is 0644 whatever the image says.
func fetchFile(ctx context.Context, s *appliance.Session, src, dest string) (err error) {
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

// sessionRecipeVars merges --vars-file and --var like `imgbake run`.
func sessionRecipeVars(varsFile string, kvs []string) (map[string]any, error) {
	vars := map[string]any{}
	if varsFile != "" {
		fv, err := recipes.ReadVarsFile(varsFile)
		if err != nil {
			return nil, withCode(ExitUsage, err)
		}
		maps.Copy(vars, fv)
	}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usageErr("--var %q: expected NAME=VALUE", kv)
		}
		vars[k] = v
	}
	return vars, nil
}

// runRecipe applies a recipe to the session's image, as `imgbake run` does
// on a fresh appliance. A failure leaves the steps done so far in the
// session (stop --discard drops everything).
func (d *sessionDaemon) runRecipe(ctx context.Context, req sessionRequest, fc *frameConn) sessionResult {
	start := time.Now()
	stdout, stderr := fc.stream(proto.TStdout), fc.stream(proto.TStderr)
	vars, err := sessionRecipeVars(req.VarsFile, req.Vars)
	if err != nil {
		return errResult(ctx, err)
	}
	rec, err := recipes.Load(req.Recipe, recipes.WithVars(vars))
	if err != nil {
		var el recipes.ErrorList
		if errors.As(err, &el) {
			for _, e := range el {
				fmt.Fprintln(stderr, e.Error())
			}
		}
		return sessionResult{Error: err.Error(), Code: ExitUsage}
	}
	sess := d.op.sess
	prev, err := fsops.ReadState(ctx, sess)
	if err != nil && !req.Force {
		return errResult(ctx, withCode(ExitImage, err))
	}
	plan, err := planRun(prev, rec, req.Force)
	if err != nil {
		return errResult(ctx, err)
	}
	var events eventSink = &humanEvents{out: stdout, verbose: req.Verbose}
	if req.JSON {
		events = newJSONEvents(stdout)
	}
	if plan.skipAll {
		events.alreadyApplied(rec, prev)
		return sessionResult{}
	}
	info, err := sess.Inspect(ctx)
	if err != nil {
		return errResult(ctx, withCode(ExitImage, fmt.Errorf("gathering facts: %w", err)))
	}
	facts := factsFrom(info)
	events.runStart(rec, facts)
	if plan.resumeMsg != "" {
		fmt.Fprintf(stderr, "imgbake: %s\n", plan.resumeMsg)
	}
	network := d.network && slices.ContainsFunc(rec.Steps, func(st recipes.Step) bool { return recipes.NeedsNetwork(st.Op) })
	rs := &stateRecorder{sess: sess, st: fsops.NewRun(prev, rec.Name, rec.File, rec.SHA256, len(rec.Steps), appliance.AgentVersion)}
	r := &runner{sess: sess, verbose: req.Verbose, errOut: stderr, state: rs, startAt: plan.startAt,
		rec: rec, facts: facts, events: events, network: network}
	sum, runErr := r.run(ctx)
	if runErr == nil {
		runErr = rs.complete(ctx)
	}
	if runErr != nil {
		events.runEnd(rec, sum, time.Since(start), runErr, "kept in the session as far as it got (session stop --discard drops it)")
		res := errResult(ctx, runErr)
		var se *stepError
		if errors.As(runErr, &se) {
			res.Error = "" // already reported by the events
			res.RC = res.Code
		}
		return res
	}
	events.runEnd(rec, sum, time.Since(start), nil, "")
	return sessionResult{}
}
