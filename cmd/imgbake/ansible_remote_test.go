package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imgbake/imgbake/internal/vmtest"
	"github.com/imgbake/imgbake/testimages"
)

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
	// The module host ran in the remote session, its requests through the
	// socket forwarded over the play's ssh connection.
	if starts, served := moduleHostLogged(t, logs[0]); starts != 1 || served < 10 {
		t.Errorf("the remote module host started %d times and served %d modules; want 1 start and every module", starts, served)
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
