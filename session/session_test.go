package session

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imgbake/imgbake/appliance"
	"github.com/imgbake/imgbake/appliance/proto"
	"github.com/imgbake/imgbake/bake"
	"github.com/imgbake/imgbake/session/api"
)

// TestMain lets Start run this test binary as the daemon: with
// IMGBAKE_SESSION_TEST_DAEMON=1 it behaves as `imgbake session serve
// --name NAME --dir DIR`.
func TestMain(m *testing.M) {
	if os.Getenv("IMGBAKE_SESSION_TEST_SERVICE") != "" {
		os.Exit(testService(os.Getenv("IMGBAKE_SESSION_TEST_SERVICE")))
	}
	if os.Getenv("IMGBAKE_SESSION_TEST_DAEMON") == "1" {
		var dir string
		for i, a := range os.Args {
			if a == "--dir" && i+1 < len(os.Args) {
				dir = os.Args[i+1]
			}
		}
		cfg, err := ReadConfig(dir)
		if err == nil {
			err = Serve(context.Background(), cfg)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(bake.ExitCode(err))
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// private gives the test its own session base and TMPDIR.
func private(t *testing.T) string {
	t.Helper()
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	t.Setenv("TMPDIR", t.TempDir())
	base, err := api.Base()
	if err != nil {
		t.Fatal(err)
	}
	return base
}

func TestConfigRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "s")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	in := Config{Name: "s", Disks: []string{"/srv/a.qcow2", "/srv/b.raw"}, IdleTimeout: 90 * time.Second, OwnerPID: 42, OwnerID: "42 123", ReadyFD: 3,
		Options: bake.Options{Format: "qcow2", AllowBacking: true, Mounts: []bake.Mount{{Device: "/dev/vda2"}, {Device: "/dev/vda1", Mountpoint: "/boot"}},
			Kernel: "/boot/vmlinuz", MemoryMiB: 1024, Cold: true, Network: true,
			Logf: func(string, ...any) {}, Notices: os.Stderr}}
	if err := WriteConfig(dir, in); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, api.ConfigFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("config.json mode %v, %v; want 0600", fi.Mode(), err)
	}
	out, err := ReadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	if out.Options.Logf != nil || out.Options.Notices != nil {
		t.Error("Logf and Notices must not travel")
	}
	in.Options.Logf, in.Options.Notices, in.Dir = nil, nil, dir
	a, _ := json.Marshal(in)
	b, _ := json.Marshal(out)
	if !bytes.Equal(a, b) || out.Dir != dir || !out.Options.Cold || out.IdleTimeout != in.IdleTimeout {
		t.Errorf("ReadConfig = %s\nwant %s", b, a)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadConfig(dir); err == nil {
		t.Error("ReadConfig accepted a directory others can read")
	}
}

func TestScanRemovesDeadSessions(t *testing.T) {
	base := private(t)
	self, err := appliance.ProcessID(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for name, procID := range map[string]string{"alive": self, "dead": "999999999 1"} {
		dir := filepath.Join(base, name)
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := api.WriteInfo(dir, api.Info{Name: name, PID: 1, ProcID: procID}); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, api.LogFile), []byte(name+" log\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var removed []string
	got := Scan(base, func(name string, _ api.Info) { removed = append(removed, name) })
	if len(got) != 1 || got[0].Info.Name != "alive" || len(removed) != 1 || removed[0] != "dead" {
		t.Errorf("Scan = %+v, removed %v", got, removed)
	}
	if b, err := os.ReadFile(api.KeptLog(base, "dead")); err != nil || string(b) != "dead log\n" {
		t.Errorf("the dead session's log: %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(base, "dead")); !os.IsNotExist(err) {
		t.Errorf("the dead session's directory is still there: %v", err)
	}
}

func TestDefaultName(t *testing.T) {
	base := t.TempDir()
	for disk, want := range map[string]string{"/x/debian-nopart.raw": "debian-nopart", "/x/my disk.qcow2": "my-disk", "/x/.qcow2": "disk", "/x/..weird": "disk"} {
		if got := defaultName(base, disk); got != want {
			t.Errorf("defaultName(%q) = %q, want %q", disk, got, want)
		}
	}
	if err := os.Mkdir(filepath.Join(base, "web"), 0o700); err != nil {
		t.Fatal(err)
	}
	if got := defaultName(base, "/srv/web.qcow2"); got != "web-2" {
		t.Errorf("a taken name: got %q, want web-2", got)
	}
}

func rawDisk(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk.raw")
	if err := os.WriteFile(p, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestStartRefusesBadUsage(t *testing.T) {
	private(t)
	disk := rawDisk(t)
	for what, sc := range map[string]StartConfig{
		"no disk":             {Name: "s"},
		"a bad name":          {Name: "../x", Disks: []string{disk}},
		"--reuse and no name": {Disks: []string{disk}, Reuse: true},
		"a missing owner":     {Disks: []string{disk}, OwnerPID: 999999999},
		"a bad format":        {Disks: []string{disk}, Options: bake.Options{Format: "vmdk"}},
	} {
		if _, err := Start(context.Background(), sc); bake.ExitCode(err) != bake.ExitUsage {
			t.Errorf("%s: %v (exit %d), want exit %d", what, err, bake.ExitCode(err), bake.ExitUsage)
		}
	}
}

// TestStartHandsOptionsToDaemon: the daemon opens the disks with the
// options Start was given, read from its config file: a --format qcow2 on
// a raw file is refused by the daemon itself (no VM is needed for that),
// and its log records --cold.
func TestStartHandsOptionsToDaemon(t *testing.T) {
	base := private(t)
	t.Setenv("IMGBAKE_SESSION_TEST_DAEMON", "1")
	disk := rawDisk(t)
	_, err := Start(context.Background(), StartConfig{Name: "opts", Disks: []string{disk}, Executable: os.Args[0],
		Options: bake.Options{Format: "qcow2", Cold: true, MemoryMiB: 768}})
	if bake.ExitCode(err) != bake.ExitImage || !strings.Contains(fmt.Sprint(err), "is not a qcow2 image") {
		t.Fatalf("Start = %v (exit %d); want the daemon's refusal of --format qcow2 (exit 3)", err, bake.ExitCode(err))
	}
	log, rerr := os.ReadFile(api.KeptLog(base, "opts"))
	if rerr != nil || !strings.Contains(string(log), "cold true") || !strings.Contains(string(log), "failed to start") {
		t.Errorf("the session log (%v):\n%s", rerr, log)
	}
	if _, err := os.Stat(filepath.Join(base, "opts")); !os.IsNotExist(err) {
		t.Errorf("the failed session's directory is still there: %v", err)
	}
}

func TestClientWithoutSession(t *testing.T) {
	private(t)
	ctx := context.Background()
	var out, errb bytes.Buffer
	if _, err := Do(ctx, "nosuch", api.Request{Op: api.OpPut}, nil, &out, &errb); bake.ExitCode(err) != bake.ExitUsage || !errors.Is(err, ErrNoSession) {
		t.Errorf("Do on a missing session: %v (exit %d)", err, bake.ExitCode(err))
	}
	if _, err := Exec(ctx, "nosuch", api.Request{Argv: []string{"true"}}, nil, &out, &errb); bake.ExitCode(err) != api.ExitSession {
		t.Errorf("Exec on a missing session: %v (exit %d)", err, bake.ExitCode(err))
	}
	if _, err := Stop(ctx, "bad/name", false, &out, &errb); bake.ExitCode(err) != bake.ExitUsage {
		t.Errorf("Stop with a bad name: %v (exit %d)", err, bake.ExitCode(err))
	}
	if list, err := List(ctx, &errb); err != nil || list == nil || len(list) != 0 {
		t.Errorf("List = %v, %v; want an empty list", list, err)
	}
}

// fakeDaemon serves one request on a session directory named name the
// way Serve does: it uppercases the request's stdin onto TStdout, writes
// "note" on TStderr and answers with result.
func fakeDaemon(t *testing.T, base, name string, result api.Result) <-chan api.Request {
	t.Helper()
	dir := filepath.Join(base, name)
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	self, _ := appliance.ProcessID(os.Getpid())
	if err := api.WriteInfo(dir, api.Info{Name: name, State: api.StateReady, PID: os.Getpid(), ProcID: self}); err != nil {
		t.Fatal(err)
	}
	addr, done, err := api.SockAddr(dir)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", addr)
	done()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	reqs := make(chan api.Request, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		fr := proto.NewReader(bufio.NewReader(conn))
		fc := api.NewFrameConn(conn)
		f, err := fr.ReadFrame()
		if err != nil || f.Type != proto.TCall {
			return
		}
		var req api.Request
		_ = json.Unmarshal(f.Payload, &req)
		reqs <- req
		for req.Stdin {
			f, err := fr.ReadFrame()
			if err != nil || f.Type == proto.TEOF {
				break
			}
			_, _ = fc.Stream(proto.TStdout).Write(bytes.ToUpper(f.Payload))
		}
		_ = fc.Send(proto.TStderr, []byte("note\n"))
		_ = fc.SendJSON(proto.TResult, result)
	}()
	return reqs
}

func TestExecStreams(t *testing.T) {
	base := private(t)
	reqs := fakeDaemon(t, base, "fake", api.Result{RC: 7, TimedOut: true})
	var out, errb bytes.Buffer
	rc, err := Exec(context.Background(), "fake", api.Request{Argv: []string{"tr", "a-z", "A-Z"}, TimeoutMS: 2000}, strings.NewReader("hello\n"), &out, &errb)
	if err != nil || rc != 7 {
		t.Fatalf("Exec = %d, %v", rc, err)
	}
	req := <-reqs
	if req.Op != api.OpExec || !req.Stdin || strings.Join(req.Argv, " ") != "tr a-z A-Z" || req.TimeoutMS != 2000 {
		t.Errorf("the daemon got %+v", req)
	}
	if out.String() != "HELLO\n" || !strings.Contains(errb.String(), "note\n") || !strings.Contains(errb.String(), "timed out after 2s") {
		t.Errorf("stdout %q, stderr %q", out.String(), errb.String())
	}

	fakeDaemon(t, base, "failing", api.Result{Error: "put: no data", Code: bake.ExitUsage})
	if _, err := Do(context.Background(), "failing", api.Request{Op: api.OpPut, Image: "/x"}, nil, &out, &errb); bake.ExitCode(err) != bake.ExitUsage || !strings.Contains(err.Error(), "session failing: put: no data") {
		t.Errorf("a failed request: %v (exit %d)", err, bake.ExitCode(err))
	}
}
