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
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/imgbake/imgbake/appliance"
	"github.com/imgbake/imgbake/appliance/proto"
	"github.com/imgbake/imgbake/bake"
	"github.com/imgbake/imgbake/session/api"
)

// daemon is the process behind one session.
type daemon struct {
	cfg       Config
	name, dir string
	base      string
	log       io.Writer
	img       *bake.Image
	info      api.Info

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
	outcome   api.Result // how it ended, for late stop requests
	svc       *services
}

type stopRequest struct {
	discard bool
	reply   chan api.Result
	sent    chan struct{} // closed once the reply is on its way to the client
}

func (d *daemon) logf(format string, args ...any) {
	fmt.Fprintf(d.log, "%s %s\n", time.Now().Format("2006-01-02 15:04:05.000"), fmt.Sprintf(format, args...))
}

// Serve is the daemon of the session cfg describes (cfg.Dir must exist
// and be private): it opens cfg.Disks with cfg.Options in one appliance,
// reports on cfg.ReadyFD, serves requests on the socket in cfg.Dir and
// returns when the session ends: stopped on request (commit, or discard),
// or discarded because its owner exited, it sat idle past its timeout, ctx
// was cancelled or the appliance died. Its directory is removed then, the
// log kept beside it as NAME.log.
func Serve(ctx context.Context, cfg Config) (err error) {
	signal.Ignore(syscall.SIGHUP, syscall.SIGPIPE)
	d := &daemon{cfg: cfg, name: cfg.Name, dir: cfg.Dir, base: filepath.Dir(cfg.Dir), log: cfg.Log,
		stopReq: make(chan stopRequest), stopped: make(chan struct{})}
	if d.log == nil {
		d.log = os.Stderr
	}
	var ready *os.File
	if cfg.ReadyFD > 0 {
		ready = os.NewFile(uintptr(cfg.ReadyFD), "ready")
	}
	report := func(r api.Report) {
		if ready != nil {
			_ = json.NewEncoder(ready).Encode(r)
			ready.Close()
			ready = nil
		}
	}
	started := false
	defer func() {
		if err != nil && !started {
			d.logf("session %s failed to start: %v", d.name, err)
			report(api.Report{Error: err.Error(), Code: bake.ExitCode(err)})
			if api.ValidName(d.name) && filepath.Base(d.dir) == d.name {
				removeDir(d.base, d.name)
			}
		}
	}()
	if err := api.CheckName(d.name); err != nil {
		return bake.Classify(bake.ErrUsage, err)
	}
	if filepath.Base(d.dir) != d.name {
		return usageErr("session %s: its directory %s is not named after it", d.name, d.dir)
	}
	if err := api.CheckPrivate(d.dir); err != nil {
		return err
	}
	if err := d.open(ctx); err != nil {
		return err
	}
	defer func() {
		if d.img != nil {
			d.img.Abort()
		}
	}()
	addr, closeDir, err := api.SockAddr(d.dir)
	if err != nil {
		return err
	}
	ln, err := net.Listen("unix", addr)
	closeDir()
	if err != nil {
		return fmt.Errorf("listening on %s: %w", filepath.Join(d.dir, api.SockFile), err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	defer ln.Close()
	d.info.State = api.StateReady
	if err := api.WriteInfo(d.dir, d.info); err != nil {
		return err
	}
	d.reqCtx, d.reqCancel = context.WithCancel(context.WithoutCancel(ctx))
	defer d.reqCancel()
	svcCtx, svcCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer svcCancel()
	// A service needs its input forwarded as it is written (ExecStream):
	// plain Exec gathers it into large chunks first.
	start := startFunc(func(context.Context, proto.ExecArgs, io.Reader, io.Writer, io.Writer) (proto.ExecResult, error) {
		return proto.ExecResult{}, errors.New("this session cannot stream to a command")
	})
	if s, ok := d.img.Session().(interface {
		ExecStream(context.Context, proto.ExecArgs, io.Reader, io.Writer, io.Writer) (proto.ExecResult, error)
	}); ok {
		start = s.ExecStream
	}
	d.svc = newServices(svcCtx, start, d.logf)
	defer d.svc.stopAll(time.Second)
	d.lastActive = time.Now()
	go d.accept(ln)
	report(api.Report{Boot: d.bootLine()})
	started = true
	d.logf("ready")
	return d.loop(ctx, ln)
}

// open records the session in info.json and opens its image.
func (d *daemon) open(ctx context.Context) error {
	id, err := appliance.ProcessID(os.Getpid())
	if err != nil {
		return err
	}
	o := d.cfg.Options
	d.info = api.Info{Name: d.name, State: api.StateStarting, PID: os.Getpid(), ProcID: id, Started: time.Now().UTC(),
		OwnerPID: d.cfg.OwnerPID, Network: o.Network}
	if d.cfg.IdleTimeout > 0 {
		d.info.IdleTimeout = d.cfg.IdleTimeout.String()
	}
	for _, p := range d.cfg.Disks {
		sd, err := api.DiskOf(p)
		if err != nil {
			return err
		}
		d.info.Disks = append(d.info.Disks, sd)
	}
	if err := api.WriteInfo(d.dir, d.info); err != nil {
		return err
	}
	if d.cfg.OwnerID != "" && !procAlive(d.cfg.OwnerID) {
		return usageErr("the owner process %d is gone already", d.cfg.OwnerPID)
	}
	d.logf("session %s: pid %d, disk(s) %s, owner pid %d, idle timeout %s, network %v, cold %v", d.name, os.Getpid(),
		strings.Join(d.cfg.Disks, ", "), d.info.OwnerPID, d.info.IdleTimeout, o.Network, o.Cold)
	o.Logf, o.Notices = d.logf, d.log
	img, err := bake.Open(ctx, d.cfg.Disks, o)
	if err != nil {
		return err
	}
	d.img = img
	d.logf("appliance booted (boot %d of this session): %s", appliance.Boots(), d.bootLine())
	return nil
}

// bootLine says how the appliance came up: a cold boot or a warm start
// (restoring the saved appliance), how long it took, and what was mounted.
func (d *daemon) bootLine() string {
	t := d.img.Boot()
	how := "warm start (restored the saved appliance)"
	switch {
	case !t.Warm && d.cfg.Options.Cold:
		how = "cold boot (--cold)"
	case !t.Warm:
		how = "cold boot"
	}
	mr := d.img.Mounts()
	return fmt.Sprintf("%s: qemu %s, agent ready %s (guest uptime %s), mounted %d filesystem(s) in %s, root %s", how,
		t.QEMUStarted.Round(time.Millisecond), t.Ready.Round(time.Millisecond), t.GuestUptime.Round(10*time.Millisecond),
		len(mr.Mounts), d.img.MountTime().Round(time.Millisecond), mr.Root)
}

// loop waits for a stop: asked for, or forced by the owner's death, the
// idle timeout, a signal or the VM's death. Only an asked-for stop
// commits.
func (d *daemon) loop(ctx context.Context, ln net.Listener) error {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	vmDone := d.img.Done()
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
		case <-vmDone:
			discard, why = true, "the appliance VM exited unexpectedly"
			break wait
		case <-tick.C:
			if d.cfg.OwnerID != "" && !procAlive(d.cfg.OwnerID) {
				discard, why = true, fmt.Sprintf("the owner process %d exited", d.info.OwnerPID)
				break wait
			}
			d.mu.Lock()
			idle := d.active == 0 && d.cfg.IdleTimeout > 0 && time.Since(d.lastActive) >= d.cfg.IdleTimeout
			d.mu.Unlock()
			if idle {
				discard, why = true, fmt.Sprintf("idle for %s (--idle-timeout)", d.cfg.IdleTimeout)
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
		return bake.WithCode(res.Code, errors.New(res.Error))
	}
	return nil
}

// stop ends the session: no new requests, running ones cancelled, then the
// appliance is shut down and the overlay committed (or discarded).
func (d *daemon) stop(ln net.Listener, discard bool, why string) api.Result {
	d.mu.Lock()
	d.stopping = true
	active := d.active
	d.info.State = api.StateStopping
	info := d.info
	d.mu.Unlock()
	_ = api.WriteInfo(d.dir, info)
	ln.Close()
	action := "committing"
	if discard {
		action = "discarding"
	}
	d.logf("stopping: %s; %s the changes; %d request(s) served, %d running", why, action, d.requests, active)
	d.reqCancel()
	waited := make(chan struct{})
	go func() { d.wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(15 * time.Second):
		d.logf("requests still running after 15s; going on")
	}
	// Services get EOF and a moment to clean up (a module host kills what
	// its tasks left) before the image is unmounted.
	d.svc.stopAll(5 * time.Second)
	t := time.Now()
	disks := strings.Join(d.cfg.Disks, ", ")
	var res api.Result
	err := d.img.Finish(context.Background(), !discard)
	d.img = nil
	switch {
	case err != nil:
		res = api.Result{Error: fmt.Sprintf("%s: the changes were not committed: %v", why, err), Code: bake.ExitCode(err)}
		d.logf("stop failed after %s: %v", time.Since(t).Round(time.Millisecond), err)
	case discard:
		res = api.Result{Detail: fmt.Sprintf("discarded (%s); %s unchanged", why, disks)}
		if why != "stop requested" {
			// Whoever asked for a commit meanwhile must not think it happened.
			res.Error, res.Code = fmt.Sprintf("session %s was stopped: %s; its changes were discarded", d.name, why), bake.ExitImage
		}
		d.logf("discarded in %s", time.Since(t).Round(time.Millisecond))
	default:
		res = api.Result{Detail: "committed into " + disks}
		d.logf("committed in %s", time.Since(t).Round(time.Millisecond))
	}
	d.logf("session %s ended: %d request(s), %d appliance boot(s)", d.name, d.requests, appliance.Boots())
	d.outcome = res
	removeDir(d.base, d.name)
	close(d.stopped)
	return res
}

func (d *daemon) accept(ln net.Listener) {
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
func (d *daemon) begin() (func(), error) {
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

// handle serves one connection: one request.
func (d *daemon) handle(conn net.Conn) {
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	fr := proto.NewReader(bufio.NewReader(conn))
	f, err := fr.ReadFrame()
	if err != nil || f.Type != proto.TCall {
		return
	}
	_ = conn.SetReadDeadline(time.Time{})
	fc := api.NewFrameConn(conn)
	var req api.Request
	if err := json.Unmarshal(f.Payload, &req); err != nil {
		_ = fc.SendJSON(proto.TResult, api.Result{Error: "bad request: " + err.Error(), Code: bake.ExitUsage})
		return
	}
	switch req.Op {
	case api.OpStop:
		sent := make(chan struct{})
		defer close(sent)
		_ = fc.SendJSON(proto.TResult, d.requestStop(req.Discard, sent))
		return
	case api.OpStatus:
		_ = fc.SendJSON(proto.TResult, api.Result{Status: d.status()})
		return
	}
	done, err := d.begin()
	if err != nil {
		_ = fc.SendJSON(proto.TResult, api.Result{Error: err.Error(), Code: bake.ExitImage})
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
	var in io.Reader
	if stdin != nil {
		in = stdin
	}
	res := d.dispatch(ctx, req, in, fc)
	if stdin != nil {
		stdin.CloseWithError(io.ErrClosedPipe)
	}
	if res.Error != "" {
		d.logf("%s failed after %s: %s", describeRequest(req), time.Since(t).Round(time.Millisecond), res.Error)
	} else {
		d.logf("%s: rc %d in %s", describeRequest(req), res.RC, time.Since(t).Round(time.Millisecond))
	}
	_ = fc.SendJSON(proto.TResult, res)
}

// requestStop hands the stop to the main loop and waits for the outcome.
func (d *daemon) requestStop(discard bool, sent chan struct{}) api.Result {
	sr := stopRequest{discard: discard, reply: make(chan api.Result, 1), sent: sent}
	select {
	case d.stopReq <- sr:
		return <-sr.reply
	case <-d.stopped:
		res := d.outcome
		if !discard && res.Error == "" && strings.HasPrefix(res.Detail, "discarded") {
			res.Error, res.Code = "the session was already stopped: "+res.Detail, bake.ExitImage
		}
		return res
	}
}

func (d *daemon) status() *api.Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := &api.Status{Name: d.name, PID: os.Getpid(), State: d.info.State, Started: d.info.Started, Requests: d.requests,
		Active: d.active, IdleTimeout: d.info.IdleTimeout, OwnerPID: d.info.OwnerPID, Boots: appliance.Boots(), Network: d.info.Network}
	if d.svc != nil {
		st.Services = d.svc.status()
	}
	if d.active == 0 {
		st.IdleMS = time.Since(d.lastActive).Milliseconds()
	}
	for _, sd := range d.info.Disks {
		st.Disks = append(st.Disks, sd.Path)
	}
	return st
}
