package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imgbake/imgbake/internal/vmtest"
	"github.com/imgbake/imgbake/testimages"
)

// tmuxSession drives imgbake on a real terminal: tmux gives it a pty of a
// known size, send-keys types, capture-pane reads the screen.
type tmuxSession struct {
	t    *testing.T
	name string
	sock string
}

func startTmux(t *testing.T, cols, rows int, args ...string) *tmuxSession {
	t.Helper()
	vmtest.LookPath(t, "tmux", "tmux")
	s := &tmuxSession{t: t, name: "imgbake", sock: filepath.Join(t.TempDir(), "tmux.sock")}
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	cmd := fmt.Sprintf("env IMGBAKE_TEST_AS_MAIN=1 TMPDIR=%s %s %s; echo EXIT=$?; sleep 600", os.Getenv("TMPDIR"), os.Args[0], strings.Join(quoted, " "))
	s.tmux("new-session", "-d", "-s", s.name, "-x", fmt.Sprint(cols), "-y", fmt.Sprint(rows), cmd)
	t.Cleanup(func() { _ = exec.Command("tmux", "-S", s.sock, "kill-server").Run() })
	return s
}

func (s *tmuxSession) tmux(args ...string) string {
	s.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-S", s.sock}, args...)...).CombinedOutput()
	if err != nil {
		s.t.Fatalf("tmux %v: %v: %s", args, err, out)
	}
	return string(out)
}

func (s *tmuxSession) send(keys ...string) {
	s.tmux(append([]string{"send-keys", "-t", s.name}, keys...)...)
}

func (s *tmuxSession) screen() string {
	return s.tmux("capture-pane", "-t", s.name, "-p", "-S", "-200")
}

// waitFor waits until the screen contains want.
func (s *tmuxSession) waitFor(want string, limit time.Duration) string {
	s.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		scr := s.screen()
		if strings.Contains(scr, want) {
			return scr
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("screen never showed %q:\n%s", want, scr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestShellOnTerminal(t *testing.T) {
	vmTests(t)
	privateTmp(t)
	disk := testimages.Fresh(t, testimages.NoPart)
	s := startTmux(t, 97, 31, "shell", "-a", disk)
	s.waitFor("(imgbake)", 2*time.Minute)
	s.send("echo $((6*7))-answer; stty size; tty", "Enter")
	s.waitFor("42-answer", 30*time.Second)
	scr := s.waitFor("/dev/pts/", 30*time.Second)
	if !strings.Contains(scr, "31 97") || !strings.Contains(scr, "/dev/pts/") {
		t.Errorf("the shell should have a terminal of the window's size:\n%s", scr)
	}
	// Resizing the window reaches the guest.
	s.tmux("resize-window", "-t", s.name, "-x", "120", "-y", "40")
	time.Sleep(300 * time.Millisecond)
	s.send("stty size", "Enter")
	s.waitFor("40 120", 30*time.Second)
	// Ctrl-C stops the guest's command, not the shell or imgbake.
	s.send("sleep 300", "Enter")
	time.Sleep(time.Second)
	s.send("C-c")
	s.send("echo survived-ctrl-c > /root/marker; exit", "Enter")
	scr = s.waitFor("EXIT=", time.Minute)
	if !strings.Contains(scr, "EXIT=0") {
		t.Fatalf("imgbake shell did not exit 0:\n%s", scr)
	}
	got, err := testimages.ReadFile(t, disk, "raw", 0, "/root/marker")
	if err != nil || string(got) != "survived-ctrl-c\n" {
		t.Fatalf("the shell's change was not written back: %q, %v", got, err)
	}
}

// TestRescueShell: with no usable shell in the image, imgbake says so and
// gives the appliance's shell with the image under /sysroot.
func TestRescueShell(t *testing.T) {
	vmTests(t)
	privateTmp(t)
	disk := testimages.Fresh(t, testimages.NoPart)
	// Break the image: no bash, no sh (Debian 12 has merged /usr).
	for _, p := range []string{"/usr/bin/bash", "/usr/bin/sh", "/usr/bin/dash"} {
		if out, err := exec.Command("debugfs", "-w", "-R", "unlink "+p, disk).CombinedOutput(); err != nil {
			t.Fatalf("debugfs unlink %s: %v %s", p, err, out)
		}
	}
	s := startTmux(t, 100, 30, "shell", "-a", disk)
	scr := s.waitFor("imgbake-rescue:", 2*time.Minute)
	if !strings.Contains(scr, "no working /bin/sh") {
		t.Errorf("imgbake should say why it gives a rescue shell:\n%s", scr)
	}
	s.send("cat /sysroot/etc/hostname; echo rescued > /sysroot/root/rescued; exit", "Enter")
	scr = s.waitFor("EXIT=", time.Minute)
	if !strings.Contains(scr, "testhost") || !strings.Contains(scr, "EXIT=0") {
		t.Fatalf("rescue shell session:\n%s", scr)
	}
	got, err := testimages.ReadFile(t, disk, "raw", 0, "/root/rescued")
	if err != nil || string(got) != "rescued\n" {
		t.Fatalf("the rescue shell's change was not written back: %q, %v", got, err)
	}
}
