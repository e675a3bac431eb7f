package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imgbake/imgbake/internal/vmtest"
	"github.com/imgbake/imgbake/session"
	"github.com/imgbake/imgbake/testimages"
)

// The Ansible tests run Debian's ansible-playbook with the imgbake.disk
// collection from this repository, against the python3 test image. The
// connection plugin calls this test binary as imgbake.

func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// ansibleEnv checks for ansible-playbook and returns the environment a
// playbook runs with: our collection, our ansible.cfg, this binary as imgbake.
func ansibleEnv(t *testing.T, tmp string) []string {
	t.Helper()
	vmtest.LookPath(t, "ansible-playbook", "ansible-core")
	exe, err := os.Executable()
	must(t, err)
	root := repoRoot(t)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ANSIBLE_") {
			env = append(env, kv)
		}
	}
	return append(env,
		"IMGBAKE_TEST_AS_MAIN=1",
		"IMGBAKE_COMMAND="+exe,
		"ANSIBLE_CONFIG="+filepath.Join(root, "cmd", "imgbake", "testdata", "ansible", "ansible.cfg"),
		"ANSIBLE_COLLECTIONS_PATH="+root,
		"ANSIBLE_COLLECTIONS_PATHS="+root,
		"ANSIBLE_LOCAL_TEMP="+filepath.Join(tmp, "ansible-local"),
		"ANSIBLE_NOCOLOR=1",
		"ANSIBLE_FORCE_COLOR=0",
	)
}

func ansibleCmd(t *testing.T, env []string, playbook string, extra ...string) *exec.Cmd {
	t.Helper()
	dir := filepath.Join(repoRoot(t), "cmd", "imgbake", "testdata", "ansible")
	cmd := exec.Command("ansible-playbook", append([]string{playbook}, extra...)...)
	cmd.Dir = dir
	cmd.Env = env
	return cmd
}

func runPlaybook(t *testing.T, env []string, playbook string, extra ...string) (string, int, time.Duration) {
	t.Helper()
	cmd := ansibleCmd(t, env, playbook, extra...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("ansible-playbook: %v\n%s", err, out)
		}
		code = ee.ExitCode()
	}
	return string(out), code, took
}

// verifyPlaybookImage reads the image back with debugfs (no imgbake code)
// and checks what site.yml did.
func verifyPlaybookImage(t *testing.T, disk, outDir string) {
	t.Helper()
	files, err := testimages.ReadFiles(t, disk, "raw", 0, "/etc/motd", "/etc/app.conf", "/opt/app/data.txt",
		"/etc/hosts", "/etc/passwd", "/opt/app/ran", "/root/answer", "/etc/webapp/app.ini")
	if err != nil {
		t.Fatalf("reading the image: %v", err)
	}
	want := map[string]string{
		"/etc/motd":           "Welcome to imgbake-test, baked by Ansible through imgbake.\nOS: debian\n",
		"/etc/app.conf":       "# app config\nname = imgbake-test\ndebug = false\n",
		"/opt/app/data.txt":   "application data from the controller\n",
		"/opt/app/ran":        "ran as root\n",
		"/root/answer":        "42\n",
		"/etc/webapp/app.ini": "[server]\nloglevel = info\nport = 8080\nworkers = 4\n",
	}
	for p, w := range want {
		if string(files[p]) != w {
			t.Errorf("%s = %q, want %q", p, files[p], w)
		}
	}
	if !strings.Contains(string(files["/etc/hosts"]), "10.0.0.5 db.internal\n") {
		t.Errorf("/etc/hosts = %q", files["/etc/hosts"])
	}
	if !strings.Contains(string(files["/etc/passwd"]), "deploy:x:1500:1500::/home/deploy:/bin/bash\n") {
		t.Errorf("no deploy user in /etc/passwd:\n%s", files["/etc/passwd"])
	}
	for p, perm := range map[string]uint32{"/etc/app.conf": 0o600, "/opt/app/data.txt": 0o640, "/opt/app/run.sh": 0o755, "/etc/webapp": 0o755} {
		fi, err := testimages.Stat(t, disk, "raw", 0, p)
		if err != nil || fi.Perm() != perm {
			t.Errorf("%s: mode %o, %v; want %o", p, fi.Perm(), err, perm)
		}
	}
	if fi, err := testimages.Stat(t, disk, "raw", 0, "/usr/local/share/app-data.txt"); err != nil || !fi.IsSymlink || fi.Target != "/opt/app/data.txt" {
		t.Errorf("symlink: %+v, %v", fi, err)
	}
	if fi, err := testimages.Stat(t, disk, "raw", 0, "/home/deploy"); err != nil || !fi.IsDir || fi.UID != 1500 {
		t.Errorf("/home/deploy: %+v, %v", fi, err)
	}
	if got, err := os.ReadFile(filepath.Join(outDir, "motd")); err != nil || string(got) != want["/etc/motd"] {
		t.Errorf("fetched motd = %q, %v", got, err)
	}
}

// sessionLogs returns the logs of the sessions a play left in base.
func sessionLogs(t *testing.T, base string) []string {
	t.Helper()
	logs, _ := filepath.Glob(filepath.Join(base, "ansible-*.log"))
	return logs
}

// sitePlay runs site.yml against a fresh python3 image, checks that it
// passed and that the image holds its work, and returns the play's output
// and the session logs it left.
func sitePlay(t *testing.T, extra ...string) (out string, logs []string) {
	t.Helper()
	tmp, base := sessionTest(t)
	env := ansibleEnv(t, tmp)
	disk := testimages.Fresh(t, testimages.Python)
	outDir := t.TempDir()
	out, code, took := runPlaybook(t, env, "site.yml", append([]string{"-e", "disk=" + disk, "-e", "out_dir=" + outDir}, extra...)...)
	if code != 0 {
		t.Fatalf("ansible-playbook exited %d:\n%s", code, out)
	}
	logs = sessionLogs(t, base)
	t.Logf("the play: %d tasks, %d sessions in %s", strings.Count(out, "\nTASK ["), len(logs), took.Round(100*time.Millisecond))
	verifyPlaybookImage(t, disk, outDir)
	waitNoQEMU(t, tmp, 5*time.Second)
	if ss := session.Scan(base, nil); len(ss) != 0 {
		t.Errorf("sessions left running: %+v", ss)
	}
	return out, logs
}

// TestAnsiblePlaybook: a 20-task play (command, copy, template, lineinfile,
// user, file, fetch, a delegated role) against a disk, one boot for all of
// it, committed at the end and verified independently; with the module
// host (one python3 for the session, whatever the number of tasks) and
// without it.
func TestAnsiblePlaybook(t *testing.T) {
	for _, host := range []bool{true, false} {
		t.Run(map[bool]string{true: "module-host", false: "no-module-host"}[host], func(t *testing.T) {
			out, logs := sitePlay(t, "-e", fmt.Sprintf("imgbake_module_host=%v", host))
			if strings.Count(out, "\nTASK [") < 12 || !strings.Contains(out, "changes committed into the image") || !strings.Contains(out, "failed=0") {
				t.Errorf("unexpected play output:\n%s", out)
			}
			if len(logs) != 1 {
				t.Fatalf("want one session for the play, found %v", logs)
			}
			if n := bootsLogged(t, logs[0]); n != 1 {
				t.Errorf("the session log records %d boots for the play, want 1", n)
			}
			starts, served := moduleHostLogged(t, logs[0])
			switch {
			case host && (starts != 1 || served < 10):
				t.Errorf("the module host started %d times and served %d modules; want one start for the play and every module", starts, served)
			case !host && starts+served != 0:
				t.Errorf("ansible_imgbake_module_host=false, yet the module host started %d times", starts)
			}
		})
	}
}

// moduleHostLogged counts a session log's module host starts and the
// modules it served.
func moduleHostLogged(t *testing.T, logPath string) (starts, served int) {
	t.Helper()
	b, err := os.ReadFile(logPath)
	must(t, err)
	for _, l := range strings.Split(string(b), "\n") {
		switch {
		case strings.Contains(l, "service modhost-") && strings.Contains(l, " started in "):
			starts++
		case strings.Contains(l, " service modhost-") && strings.Contains(l, ": rc ") && !strings.Contains(l, " stopped: "):
			served++
		}
	}
	return starts, served
}

// TestAnsiblePerTask: ansible_imgbake_per_task gives every task its own
// session (one boot each, committed at the task's end): the same image as
// with one session for the play. This is the baseline make bench compares with.
func TestAnsiblePerTask(t *testing.T) {
	_, logs := sitePlay(t, "-e", "imgbake_per_task=true")
	if len(logs) < 12 {
		t.Errorf("want a session per task (at least 12), found %d", len(logs))
	}
	for _, l := range logs {
		if n := bootsLogged(t, l); n != 1 {
			t.Errorf("%s records %d boots, want 1", l, n)
		}
	}
}

// TestAnsibleFailure: the third task fails inside the image; ansible-playbook
// exits non-zero with the task's rc and stderr, the fourth task never runs,
// and the session is discarded: the image is byte-identical.
func TestAnsibleFailure(t *testing.T) {
	for _, host := range []bool{true, false} {
		t.Run(map[bool]string{true: "module-host", false: "no-module-host"}[host], func(t *testing.T) {
			tmp, base := sessionTest(t)
			env := ansibleEnv(t, tmp)
			disk := testimages.Fresh(t, testimages.Python)
			before := sha256File(t, disk)
			out, code, took := runPlaybook(t, env, "fail.yml", "-e", "disk="+disk, "-e", fmt.Sprintf("imgbake_module_host=%v", host))
			t.Logf("failing play: exit %d in %s", code, took.Round(100*time.Millisecond))
			if code == 0 {
				t.Fatalf("a failed play exited 0:\n%s", out)
			}
			for _, want := range []string{`"rc": 3`, "no such thing", "changes discarded", "the image is unchanged"} {
				if !strings.Contains(out, want) {
					t.Errorf("the output lacks %q:\n%s", want, out)
				}
			}
			if strings.Contains(out, "TASK [never runs]") {
				t.Errorf("a task after the failure ran:\n%s", out)
			}
			if sha256File(t, disk) != before {
				t.Error("a failed play changed the image")
			}
			waitNoQEMU(t, tmp, 5*time.Second)
			if ss := session.Scan(base, nil); len(ss) != 0 {
				t.Errorf("sessions left running: %+v", ss)
			}
		})
	}
}

// TestAnsibleKilled: ansible-playbook killed outright mid-play leaves no
// qemu, no session and the image byte-identical (the owner watchdog).
func TestAnsibleKilled(t *testing.T) {
	tmp, base := sessionTest(t)
	env := ansibleEnv(t, tmp)
	disk := testimages.Fresh(t, testimages.Python)
	before := sha256File(t, disk)
	killPlaybook(t, env, "slow.yml", "-e", "disk="+disk)
	waitNoQEMU(t, tmp, 30*time.Second)
	for i := 0; len(session.Scan(base, nil)) > 0; i++ {
		if i > 100 {
			t.Fatal("the session is still there")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if sha256File(t, disk) != before {
		t.Error("a killed play changed the image")
	}
	logs := sessionLogs(t, base)
	if len(logs) != 1 {
		t.Fatalf("session logs: %v", logs)
	}
	if b, _ := os.ReadFile(logs[0]); !strings.Contains(string(b), "owner process") {
		t.Errorf("the session log does not name the owner's death:\n%s", b)
	}
}

// killPlaybook runs a playbook until its long task has started inside the
// image, then kills ansible-playbook outright.
func killPlaybook(t *testing.T, env []string, playbook string, extra ...string) {
	t.Helper()
	cmd := ansibleCmd(t, env, playbook, append(extra, "-v")...)
	pr, pw, err := os.Pipe()
	must(t, err)
	cmd.Stdout, cmd.Stderr = pw, pw
	must(t, cmd.Start())
	pw.Close()
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	lines := make(chan string, 1000)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var seen bytes.Buffer
	deadline := time.After(3 * time.Minute)
wait:
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("ansible-playbook ended before the long task:\n%s", seen.String())
			}
			seen.WriteString(l + "\n")
			if strings.Contains(l, "TASK [a long command]") {
				break wait
			}
		case <-deadline:
			t.Fatalf("the long task did not start:\n%s", seen.String())
		}
	}
	// Let the command start inside the image.
	time.Sleep(3 * time.Second)
	must(t, cmd.Process.Signal(syscall.SIGKILL))
	<-exited
}
