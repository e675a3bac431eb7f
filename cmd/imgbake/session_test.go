package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imgbake/imgbake/session"
	"github.com/imgbake/imgbake/session/api"
	"github.com/imgbake/imgbake/testimages"
)

// imgbakeIn runs the CLI in-process with stdin.
func imgbakeIn(t *testing.T, stdin string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	code := Execute(ctx, Stdio{In: strings.NewReader(stdin), Out: &out, Err: &errb}, append([]string{"imgbake"}, args...))
	return cliResult{code: code, stdout: out.String(), stderr: errb.String()}
}

// sessionTest prepares a private TMPDIR and XDG_RUNTIME_DIR and lets
// `session start` re-execute the test binary as imgbake. Sessions left
// running by a failed test are killed (their qemu dies with them).
func sessionTest(t *testing.T) (tmp, base string) {
	t.Helper()
	vmTests(t)
	tmp = privateTmp(t)
	t.Setenv("IMGBAKE_TEST_AS_MAIN", "1")
	base, err := api.Base()
	must(t, err)
	t.Cleanup(func() {
		for _, s := range session.Scan(base, nil) {
			t.Logf("killing session %s (pid %d) left running", s.Info.Name, s.Info.PID)
			_ = syscall.Kill(s.Info.PID, syscall.SIGKILL)
		}
		waitNoQEMU(t, tmp, 10*time.Second)
	})
	return tmp, base
}

// bootsLogged counts the appliance boots a session's log records.
func bootsLogged(t *testing.T, logPath string) int {
	t.Helper()
	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatalf("session log: %v", err)
	}
	return strings.Count(string(b), "appliance booted")
}

// waitSessionGone waits until the session's directory is gone.
func waitSessionGone(t *testing.T, base, name string, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		if _, err := os.Stat(filepath.Join(base, name)); os.IsNotExist(err) {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			t.Fatalf("session %s still there after %s", name, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSessionLifecycle: start, exec (rc, stdin, stdout, stderr), put,
// fetch, run, list, one boot for all of it, stop --discard leaving the image
// byte-identical, then a second session whose stop commits.
func TestSessionLifecycle(t *testing.T) {
	tmp, base := sessionTest(t)
	disk := testimages.Fresh(t, testimages.NoPart)
	before := sha256File(t, disk)
	host := t.TempDir()

	t0 := time.Now()
	r := imgbake(t, "session", "start", "--name", "s1", "-a", disk)
	bootCost := time.Since(t0)
	if r.code != 0 || r.stdout != "s1\n" {
		t.Fatalf("session start: %s", r)
	}
	t.Logf("session start (boot + mount): %s", bootCost.Round(time.Millisecond))

	// Two sessions on one disk are refused, and so is a run.
	if r := imgbake(t, "session", "start", "--name", "s2", "-a", disk); r.code != ExitImage || !strings.Contains(r.stderr, "already open in session s1") {
		t.Errorf("a second session on the same disk: %s", r)
	}
	if r := imgbake(t, "session", "start", "--name", "s1", "-a", testimages.Fresh(t, testimages.NoPart)); r.code != ExitUsage || !strings.Contains(r.stderr, "already running") {
		t.Errorf("a second session with the same name: %s", r)
	}
	if r := imgbake(t, "run", "-a", disk, writeRecipe(t, goodRecipe)); r.code != ExitImage || !strings.Contains(r.stderr, "session serve --name s1") {
		t.Errorf("a run on a disk held by a session: %s", r)
	}

	// exec: exit status, stdin, stdout and stderr pass through.
	if r := imgbake(t, "session", "exec", "s1", "--", "sh", "-c", "exit 7"); r.code != 7 {
		t.Errorf("exit 7: %s", r)
	}
	r = imgbakeIn(t, "hello\nworld\n", "session", "exec", "s1", "--", "sh", "-c", "tr a-z A-Z; echo oops >&2")
	if r.code != 0 || r.stdout != "HELLO\nWORLD\n" || !strings.Contains(r.stderr, "oops") {
		t.Errorf("stdin/stdout/stderr: %s", r)
	}
	if r := imgbake(t, "session", "exec", "s1", "--", "/no/such/command"); r.code != 127 {
		t.Errorf("a missing command: %s", r)
	}
	if r := imgbake(t, "session", "exec", "nosuch", "--", "true"); r.code != ExitSession || !strings.Contains(r.stderr, "no such session") {
		t.Errorf("exec on a missing session: %s", r)
	}
	// Like ssh, exec returns when the command has exited, even if its
	// stdin never ends.
	pr, pw := io.Pipe()
	defer pw.Close()
	execDone := make(chan int, 1)
	go func() {
		var o, e bytes.Buffer
		execDone <- Execute(context.Background(), Stdio{In: pr, Out: &o, Err: &e}, []string{"imgbake", "session", "exec", "s1", "--", "true"})
	}()
	select {
	case code := <-execDone:
		if code != 0 {
			t.Errorf("exec true with an endless stdin: exit %d", code)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("exec true waited for its stdin to end")
	}

	// A request costs a round trip, not a boot.
	const n = 10
	t1 := time.Now()
	for range n {
		if r := imgbake(t, "session", "exec", "s1", "--", "true"); r.code != 0 {
			t.Fatalf("exec true: %s", r)
		}
	}
	perExec := time.Since(t1) / n
	t.Logf("session exec -- true: %s each (mean of %d), vs %s for a session start (boot + mount): %.0fx cheaper",
		perExec.Round(time.Millisecond), n, bootCost.Round(time.Millisecond), float64(bootCost)/float64(perExec))
	if perExec > bootCost/3 {
		t.Errorf("exec true costs %s, a boot %s: not a round trip", perExec, bootCost)
	}

	// put: a file to an exact path, a file into a directory, a tree, stdin.
	must(t, os.WriteFile(filepath.Join(host, "a.txt"), []byte("file a\n"), 0o640))
	must(t, os.MkdirAll(filepath.Join(host, "tree", "sub"), 0o755))
	must(t, os.WriteFile(filepath.Join(host, "tree", "sub", "b.txt"), []byte("file b\n"), 0o644))
	for _, args := range [][]string{
		{"s1", filepath.Join(host, "a.txt"), "/etc/a-renamed.txt"},
		{"s1", filepath.Join(host, "a.txt"), "/root"},
		{"s1", filepath.Join(host, "tree"), "/opt"},
	} {
		if r := imgbake(t, append([]string{"session", "put"}, args...)...); r.code != 0 {
			t.Fatalf("put %v: %s", args, r)
		}
	}
	if r := imgbakeIn(t, "from stdin\n", "session", "put", "--mode", "0600", "s1", "-", "/etc/stdin.txt"); r.code != 0 {
		t.Fatalf("put -: %s", r)
	}
	r = imgbake(t, "session", "exec", "s1", "--", "sh", "-c", "cat /etc/a-renamed.txt /root/a.txt /opt/tree/sub/b.txt /etc/stdin.txt; stat -c %a /etc/stdin.txt /root/a.txt")
	if r.code != 0 || r.stdout != "file a\nfile a\nfile b\nfrom stdin\n600\n640\n" {
		t.Errorf("after put: %s", r)
	}
	// fetch: a file to an exact path, into a directory, a tree, stdout.
	if r := imgbake(t, "session", "fetch", "s1", "/etc/stdin.txt", filepath.Join(host, "got.txt")); r.code != 0 {
		t.Fatalf("fetch: %s", r)
	}
	if r := imgbake(t, "session", "fetch", "s1", "/etc/hostname", host+"/"); r.code != 0 {
		t.Fatalf("fetch into a directory: %s", r)
	}
	if r := imgbake(t, "session", "fetch", "s1", "/opt/tree", filepath.Join(host, "out")); r.code != 0 {
		t.Fatalf("fetch a tree: %s", r)
	}
	for p, want := range map[string]string{"got.txt": "from stdin\n", "hostname": "testhost\n", "out/tree/sub/b.txt": "file b\n"} {
		if got, err := os.ReadFile(filepath.Join(host, p)); err != nil || string(got) != want {
			t.Errorf("fetched %s = %q, %v; want %q", p, got, err, want)
		}
	}
	if r := imgbake(t, "session", "fetch", "s1", "/etc/a-renamed.txt", "-"); r.code != 0 || r.stdout != "file a\n" {
		t.Errorf("fetch to stdout: %s", r)
	}
	if r := imgbake(t, "session", "fetch", "--exact", "s1", "/opt/tree", filepath.Join(host, "x")); r.code != ExitUsage {
		t.Errorf("fetch --exact of a directory: %s", r)
	}

	// run: a recipe on the open session; a failing one exits 1.
	recipe := writeRecipe(t, "name: in a session\nsteps:\n  - write: {path: /etc/from-recipe, content: \"recipe\\n\"}\n  - run: test -e /etc/stdin.txt\n")
	if r := imgbake(t, "session", "run", "s1", recipe); r.code != 0 || !strings.Contains(r.stdout, "2 changed, 0 skipped, 0 failed") {
		t.Errorf("session run: %s", r)
	}
	if r := imgbake(t, "session", "run", "s1", writeRecipe(t, "steps:\n  - run: exit 4\n")); r.code != ExitStepFailed || !strings.Contains(r.stdout, "rc 4") {
		t.Errorf("a failing recipe: %s", r)
	}
	if r := imgbake(t, "session", "run", "s1", writeRecipe(t, "steps:\n  - bogus: 1\n")); r.code != ExitUsage {
		t.Errorf("an invalid recipe: %s", r)
	}

	// list shows it, with its disk.
	r = imgbake(t, "session", "list", "--json")
	var list []api.Status
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 1 || list[0].Name != "s1" || list[0].Disks[0] != disk || list[0].Boots != 1 {
		t.Errorf("session list --json: %v\n%s", err, r)
	}
	if r := imgbake(t, "session", "list"); !strings.Contains(r.stdout, "s1") || !strings.Contains(r.stdout, disk) {
		t.Errorf("session list: %s", r)
	}

	// stop --discard: the image is byte-identical.
	if r := imgbake(t, "session", "stop", "--discard", "s1"); r.code != 0 || !strings.Contains(r.stderr, "discarded") {
		t.Fatalf("stop --discard: %s", r)
	}
	if sha256File(t, disk) != before {
		t.Fatal("stop --discard changed the image")
	}
	if got := bootsLogged(t, filepath.Join(base, "s1.log")); got != 1 {
		t.Errorf("the session log records %d boots, want 1", got)
	}
	if r := imgbake(t, "session", "exec", "s1", "--", "true"); r.code != ExitSession {
		t.Errorf("exec after stop: %s", r)
	}
	if r := imgbake(t, "session", "start", "--attach", "--name", "s1", "-a", disk); r.code != ExitImage || !strings.Contains(r.stderr, "not running any more") {
		t.Errorf("--attach to a session that ended must not boot a new one: %s", r)
	}

	// A second session: changes are committed by stop.
	if r := imgbake(t, "session", "start", "-a", disk); r.code != 0 || r.stdout != "debian-nopart\n" {
		t.Fatalf("start with the default name: %s", r)
	}
	if r := imgbakeIn(t, "committed\n", "session", "put", "debian-nopart", "-", "/etc/committed"); r.code != 0 {
		t.Fatalf("%s", r)
	}
	if r := imgbake(t, "session", "exec", "debian-nopart", "--", "sh", "-c", "echo ran > /root/ran"); r.code != 0 {
		t.Fatalf("%s", r)
	}
	if r := imgbake(t, "session", "stop", "debian-nopart"); r.code != 0 || !strings.Contains(r.stderr, "committed into "+disk) {
		t.Fatalf("stop: %s", r)
	}
	files, err := testimages.ReadFiles(t, disk, "raw", 0, "/etc/committed", "/root/ran")
	must(t, err)
	if string(files["/etc/committed"]) != "committed\n" || string(files["/root/ran"]) != "ran\n" {
		t.Errorf("after a committing stop: %q", files)
	}
	if _, err := testimages.ReadFile(t, disk, "raw", 0, "/etc/stdin.txt"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a change of the discarded session is in the image: %v", err)
	}
	waitNoQEMU(t, tmp, 5*time.Second)
	noLeftovers(t, tmp)
	if ents, _ := os.ReadDir(base); len(ents) != 2 { // s1.log, debian-nopart.log
		t.Errorf("session directory: %v", ents)
	}
}
