package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
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
// it, committed at the end and verified independently.
func TestAnsiblePlaybook(t *testing.T) {
	out, logs := sitePlay(t)
	if strings.Count(out, "\nTASK [") < 12 || !strings.Contains(out, "changes committed into the image") || !strings.Contains(out, "failed=0") {
		t.Errorf("unexpected play output:\n%s", out)
	}
	if len(logs) != 1 {
		t.Fatalf("want one session for the play, found %v", logs)
	}
	if n := bootsLogged(t, logs[0]); n != 1 {
		t.Errorf("the session log records %d boots for the play, want 1", n)
	}
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
	tmp, base := sessionTest(t)
	env := ansibleEnv(t, tmp)
	disk := testimages.Fresh(t, testimages.Python)
	before := sha256File(t, disk)
	out, code, took := runPlaybook(t, env, "fail.yml", "-e", "disk="+disk)
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

// TestAnsibleRemoteKilled: over ssh, ansible-playbook killed mid-play: the
// local watcher ends the ssh connection, the remote session's owner (that
// connection's sshd) goes, and the session discards.
func TestAnsibleRemoteKilled(t *testing.T) {
	tmp, _ := sessionTest(t)
	env := ansibleEnv(t, tmp)
	h := startSSHD(t)
	disk := h.disk(t)
	before := sha256File(t, disk)
	vars, err := json.Marshal(map[string]any{"disk": disk, "imgbake_remote": h.user + "@127.0.0.1",
		"imgbake_ssh_args": h.sshArgs(), "imgbake_command": "env IMGBAKE_TEST_AS_MAIN=1 " + h.exe})
	must(t, err)
	killPlaybook(t, env, "slow.yml", "-e", string(vars))
	killed := time.Now()
	deadline := killed.Add(30 * time.Second)
	for len(userProcs(h.uid)) > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if left := userProcs(h.uid); len(left) > 0 {
		t.Fatalf("processes of %s (session, qemu, sshd) still running 30s after the kill: %v", h.user, left)
	}
	t.Logf("remote session gone %s after ansible-playbook was killed", time.Since(killed).Round(time.Millisecond))
	if sha256File(t, disk) != before {
		t.Error("a killed play changed the remote image")
	}
	logs := sessionLogs(t, filepath.Join("/tmp", fmt.Sprintf("imgbake-%d", h.uid), "sessions"))
	if len(logs) != 1 {
		t.Fatalf("remote session logs: %v", logs)
	}
	if b, _ := os.ReadFile(logs[0]); !strings.Contains(string(b), "owner process") || !strings.Contains(string(b), "discarded") {
		t.Errorf("the remote session log does not say it discarded after its owner's death:\n%s", b)
	}
}

// disk copies the python3 test image into a directory of the user's (where
// a commit journal goes) and returns its path.
func (h *sshHost) disk(t *testing.T) string {
	t.Helper()
	images := filepath.Join(h.dir, "images")
	must(t, os.Mkdir(images, 0o755))
	must(t, os.Chown(images, h.uid, h.gid))
	disk := filepath.Join(images, "disk.raw")
	out, err := exec.Command("cp", "--sparse=always", testimages.Path(t, testimages.Python), disk).CombinedOutput()
	if err != nil {
		t.Fatalf("%v %s", err, out)
	}
	must(t, os.Chown(disk, h.uid, h.gid))
	return disk
}

func (h *sshHost) sshArgs() string {
	return fmt.Sprintf("-p %d -i %s -o IdentitiesOnly=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR", h.port, h.key)
}

// TestAnsibleRemote: the same playbook against a disk on "a remote
// hypervisor": sshd on localhost with its own user and key, imgbake run
// there over one ssh connection.
func TestAnsibleRemote(t *testing.T) {
	tmp, _ := sessionTest(t)
	env := ansibleEnv(t, tmp)
	h := startSSHD(t)
	disk := h.disk(t)
	outDir := t.TempDir()
	vars, err := json.Marshal(map[string]any{"disk": disk, "out_dir": outDir, "imgbake_remote": h.user + "@127.0.0.1",
		"imgbake_ssh_args": h.sshArgs(), "imgbake_command": "env IMGBAKE_TEST_AS_MAIN=1 " + h.exe, "imgbake_pipelining": true})
	must(t, err)
	play, code, took := runPlaybook(t, env, "site.yml", "-e", string(vars))
	if code != 0 {
		t.Fatalf("ansible-playbook exited %d:\n%s", code, play)
	}
	t.Logf("the play over ssh: %d tasks in %s", strings.Count(play, "\nTASK ["), took.Round(100*time.Millisecond))
	if !strings.Contains(play, "changes committed into the image") {
		t.Errorf("unexpected play output:\n%s", play)
	}
	remoteBase := filepath.Join("/tmp", fmt.Sprintf("imgbake-%d", h.uid), "sessions")
	logs := sessionLogs(t, remoteBase)
	if len(logs) != 1 {
		t.Fatalf("want one session on the remote side, found %v", logs)
	}
	if n := bootsLogged(t, logs[0]); n != 1 {
		t.Errorf("the remote session log records %d boots, want 1", n)
	}
	verifyPlaybookImage(t, disk, outDir)
	// The play's ssh connection is closed: no process of the user is left.
	deadline := time.Now().Add(10 * time.Second)
	for len(userProcs(h.uid)) > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if left := userProcs(h.uid); len(left) > 0 {
		t.Errorf("processes of %s left running: %v", h.user, left)
	}
}

type sshHost struct {
	dir, user, key, exe string
	uid, gid, port      int
}

// startSSHD runs sshd on a free localhost port for a throw-away user whose
// only login is a fresh key, with a copy of this binary as its imgbake.
// Everything is undone when the test ends. The test is skipped when not
// root; a missing or broken ssh setup is a missing prerequisite (see
// internal/vmtest).
func startSSHD(t *testing.T) *sshHost {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the remote test needs root (a user of its own and sshd)")
	}
	sshd := "/usr/sbin/sshd"
	for tool, pkg := range map[string]string{sshd: "openssh-server", "ssh": "openssh-client", "ssh-keygen": "openssh-client", "useradd": "passwd", "userdel": "passwd"} {
		vmtest.LookPath(t, tool, pkg)
	}
	h := &sshHost{}
	dir, err := os.MkdirTemp("/tmp", "imgbaketest-ssh-")
	must(t, err)
	h.dir = dir
	t.Cleanup(func() { os.RemoveAll(dir) })
	must(t, os.Chmod(dir, 0o755))

	h.user = fmt.Sprintf("imgbk%d", os.Getpid()%1000000)
	home := filepath.Join(dir, "home")
	if out, err := exec.Command("useradd", "-M", "-d", home, "-s", "/bin/sh", h.user).CombinedOutput(); err != nil {
		vmtest.Missing(t, "the remote test cannot add its user: useradd: %v %s", err, out)
	}
	u, err := user.Lookup(h.user)
	must(t, err)
	h.uid, _ = strconv.Atoi(u.Uid)
	h.gid, _ = strconv.Atoi(u.Gid)
	t.Cleanup(func() {
		for _, pid := range userProcs(h.uid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(200 * time.Millisecond)
		if out, err := exec.Command("userdel", h.user).CombinedOutput(); err != nil {
			t.Logf("userdel %s: %v %s", h.user, err, out)
		}
		os.RemoveAll(filepath.Join("/tmp", fmt.Sprintf("imgbake-%d", h.uid)))
	})
	// A locked account cannot log in over ssh without PAM; "*" is no password at all.
	if out, err := exec.Command("usermod", "-p", "*", h.user).CombinedOutput(); err != nil {
		t.Fatalf("usermod: %v %s", err, out)
	}
	must(t, os.MkdirAll(home, 0o700))
	must(t, os.Chown(home, h.uid, h.gid))

	h.exe = filepath.Join(dir, "imgbake")
	self, err := os.Executable()
	must(t, err)
	if out, err := exec.Command("cp", self, h.exe).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	must(t, os.Chmod(h.exe, 0o755))

	keys := t.TempDir()
	h.key = filepath.Join(keys, "id")
	hostKey := filepath.Join(dir, "hostkey")
	for _, k := range []string{h.key, hostKey} {
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", k).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v %s", err, out)
		}
	}
	pub, err := os.ReadFile(h.key + ".pub")
	must(t, err)
	authKeys := filepath.Join(dir, "authorized_keys")
	must(t, os.WriteFile(authKeys, pub, 0o644))

	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	h.port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	if _, err := os.Stat("/run/sshd"); os.IsNotExist(err) {
		must(t, os.MkdirAll("/run/sshd", 0o755)) // sshd's privilege separation directory
		t.Cleanup(func() { os.Remove("/run/sshd") })
	}
	cfg := filepath.Join(dir, "sshd_config")
	must(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s
PidFile %s
AuthorizedKeysFile %s
AllowUsers %s
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin no
LogLevel ERROR
`, h.port, hostKey, filepath.Join(dir, "sshd.pid"), authKeys, h.user)), 0o644))
	cmd := exec.Command(sshd, "-D", "-e", "-f", cfg)
	var serr bytes.Buffer
	cmd.Stderr = &serr
	if err := cmd.Start(); err != nil {
		vmtest.Missing(t, "sshd cannot be started: %v (scripts/install-deps.sh installs openssh-server)", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", h.port), time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-done:
			vmtest.Missing(t, "sshd exited at once: %s", serr.String())
		default:
		}
		if i > 50 {
			vmtest.Missing(t, "sshd does not listen on port %d: %s", h.port, serr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	out, err := exec.Command("ssh", "-p", strconv.Itoa(h.port), "-i", h.key, "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
		h.user+"@127.0.0.1", "id -u").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != strconv.Itoa(h.uid) {
		vmtest.Missing(t, "cannot log in over ssh as %s: %v %s %s", h.user, err, out, serr.String())
	}
	return h
}

// userProcs lists the live processes of uid.
func userProcs(uid int) []int {
	var pids []int
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		st, err := os.ReadFile(filepath.Join("/proc", d.Name(), "status"))
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(st), "\n") {
			if f := strings.Fields(l); len(f) > 1 && f[0] == "Uid:" && f[1] == strconv.Itoa(uid) {
				if !strings.Contains(string(st), "State:\tZ") {
					pids = append(pids, pid)
				}
			}
		}
	}
	return pids
}
