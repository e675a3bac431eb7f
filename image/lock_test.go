package image

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// helperEnv makes the re-executed test binary hold a lock on the named
// file: it prints "locked <pid>" and keeps the lock until stdin closes.
const helperEnv = "IMGBAKE_TEST_LOCK_HELPER"

func TestMain(m *testing.M) {
	if p := os.Getenv(helperEnv); p != "" {
		os.Exit(lockHelper(p))
	}
	os.Exit(m.Run())
}

func lockHelper(path string) int {
	l, err := Acquire(path)
	if err != nil {
		fmt.Printf("error %v\n", err)
		return 3
	}
	fmt.Printf("locked %d\n", os.Getpid())
	_, _ = io.Copy(io.Discard, os.Stdin)
	l.Release()
	return 0
}

// privateLocks points the lock directory at a fresh private directory.
func privateLocks(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	t.Setenv("XDG_RUNTIME_DIR", d)
	return filepath.Join(d, "imgbake", "locks")
}

func newDisk(t *testing.T, dir, name string) string {
	t.Helper()
	return writeFile(t, filepath.Join(dir, name), make([]byte, 4096))
}

func mustAcquire(t *testing.T, p string) *Lock {
	t.Helper()
	l, err := Acquire(p)
	if err != nil {
		t.Fatalf("Acquire(%s): %v", p, err)
	}
	t.Cleanup(l.Release)
	return l
}

// holderOf extracts the holder text from an ErrLocked message.
func holderOf(t *testing.T, err error) string {
	t.Helper()
	_, h, ok := strings.Cut(err.Error(), " is locked by ")
	if !ok {
		t.Fatalf("error %q does not name a holder", err)
	}
	return h
}

func TestAcquireTwiceInProcess(t *testing.T) {
	privateLocks(t)
	dir := t.TempDir()
	disk := newDisk(t, dir, "disk.img")

	l := mustAcquire(t, disk)
	_, err := Acquire(disk)
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Acquire = %v, want ErrLocked", err)
	}
	h := holderOf(t, err)
	if got := HolderPID(h); got != os.Getpid() {
		t.Fatalf("holder pid = %d (%q), want %d", got, h, os.Getpid())
	}
	if !strings.Contains(err.Error(), disk) || !strings.Contains(h, fmt.Sprintf("pid %d (", os.Getpid())) ||
		!strings.Contains(h, " since ") || !strings.HasSuffix(h, " on "+disk) {
		t.Fatalf("error %q should name the image, the holder's pid and the locked path", err)
	}

	l.Release()
	l2, err := Acquire(disk)
	if err != nil {
		t.Fatalf("Acquire after Release: %v", err)
	}
	l2.Release()
	l3 := mustAcquire(t, disk)
	if _, err := Acquire(disk); !errors.Is(err, ErrLocked) {
		t.Fatalf("Acquire while re-held = %v, want ErrLocked", err)
	}
	l3.Release()
}

func TestLockFollowsTheFile(t *testing.T) {
	privateLocks(t)
	dir := t.TempDir()
	disk := newDisk(t, dir, "disk.img")
	other := newDisk(t, dir, "other.img")
	hard := filepath.Join(t.TempDir(), "hardlink.img") // same filesystem: TempDir shares a parent
	if err := os.Link(disk, hard); err != nil {
		t.Skipf("hard link: %v", err)
	}
	sym := filepath.Join(dir, "symlink.img")
	if err := os.Symlink(disk, sym); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name   string
		hold   string
		try    string
		locked bool
	}{
		{"same path", disk, disk, true},
		{"hard link", disk, hard, true},
		{"hard link held, original tried", hard, disk, true},
		{"symlink", disk, sym, true},
		{"symlink held, target tried", sym, disk, true},
		{"dot-dot path", disk, filepath.Join(sub, "..", "disk.img"), true},
		{"relative path", disk, "REL", true},
		{"different file", disk, other, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			try := tc.try
			if try == "REL" {
				t.Chdir(dir)
				try = "disk.img"
			}
			l := mustAcquire(t, tc.hold)
			l2, err := Acquire(try)
			if tc.locked {
				if !errors.Is(err, ErrLocked) {
					t.Fatalf("Acquire(%s) while %s is held = %v, want ErrLocked", try, tc.hold, err)
				}
			} else {
				if err != nil {
					t.Fatalf("Acquire(%s) = %v, want success", try, err)
				}
				l2.Release()
			}
			l.Release()
			l3, err := Acquire(try)
			if err != nil {
				t.Fatalf("Acquire(%s) after release: %v", try, err)
			}
			l3.Release()
		})
	}
}

// A replaced file (new inode at the same path) is a different image.
func TestLockIsPerInode(t *testing.T) {
	privateLocks(t)
	dir := t.TempDir()
	disk := newDisk(t, dir, "disk.img")
	mustAcquire(t, disk)
	moved := filepath.Join(dir, "moved.img")
	if err := os.Rename(disk, moved); err != nil {
		t.Fatal(err)
	}
	if _, err := Acquire(moved); !errors.Is(err, ErrLocked) {
		t.Fatalf("renamed image: %v, want ErrLocked", err)
	}
	newDisk(t, dir, "disk.img")
	l, err := Acquire(disk)
	if err != nil {
		t.Fatalf("new file at the old path: %v", err)
	}
	l.Release()
}

func TestAcquireMissing(t *testing.T) {
	locks := privateLocks(t)
	_, err := Acquire(filepath.Join(t.TempDir(), "missing.img"))
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("Acquire(missing) = %v, want ErrNotFound", err)
	}
	if _, err := os.Stat(locks); err == nil {
		entries, _ := os.ReadDir(locks)
		if len(entries) != 0 {
			t.Fatalf("lock files left for a missing image: %v", entries)
		}
	}
}

func TestLockFileContents(t *testing.T) {
	locks := privateLocks(t)
	disk := newDisk(t, t.TempDir(), "disk.img")
	l := mustAcquire(t, disk)

	var st syscall.Stat_t
	if err := syscall.Stat(disk, &st); err != nil {
		t.Fatal(err)
	}
	lp := filepath.Join(locks, fmt.Sprintf("%x-%x.lock", st.Dev, st.Ino))
	if l.path != lp {
		t.Fatalf("lock path %s, want %s", l.path, lp)
	}
	b, err := os.ReadFile(lp)
	if err != nil {
		t.Fatal(err)
	}
	if HolderPID(string(b)) != os.Getpid() || !strings.HasSuffix(string(b), " on "+disk+"\n") {
		t.Fatalf("lock file says %q", b)
	}
	for p, want := range map[string]os.FileMode{lp: 0o600, filepath.Dir(locks): 0o700} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&^want != 0 {
			t.Errorf("%s mode %v, want at most %v", p, fi.Mode().Perm(), want)
		}
	}
	// Nothing is written next to the image.
	entries, _ := os.ReadDir(filepath.Dir(disk))
	if len(entries) != 1 {
		t.Fatalf("files next to the image: %v", entries)
	}

	l.Release()
	b, _ = os.ReadFile(lp)
	if len(b) != 0 {
		t.Fatalf("released lock file still says %q", b)
	}
	l.Release() // twice is harmless
	var nilLock *Lock
	nilLock.Release()
}

// A stale holder record (a crashed run) is overwritten, not reported.
func TestLockStaleRecord(t *testing.T) {
	privateLocks(t)
	disk := newDisk(t, t.TempDir(), "disk.img")
	l := mustAcquire(t, disk)
	lp := l.path
	l.Release()
	if err := os.WriteFile(lp, []byte("pid 999999 (old run) since then on /old\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l = mustAcquire(t, disk)
	b, _ := os.ReadFile(lp)
	if HolderPID(string(b)) != os.Getpid() || strings.Contains(string(b), "old run") {
		t.Fatalf("lock file after re-acquire: %q", b)
	}
}

// A holder whose record is empty (it is just starting) is still named.
func TestLockHolderUnknown(t *testing.T) {
	privateLocks(t)
	disk := newDisk(t, t.TempDir(), "disk.img")
	l := mustAcquire(t, disk)
	if err := l.f.Truncate(0); err != nil {
		t.Fatal(err)
	}
	_, err := Acquire(disk)
	if !errors.Is(err, ErrLocked) || !strings.HasSuffix(err.Error(), "locked by another imgbake process") {
		t.Fatalf("Acquire = %v", err)
	}
}

func TestLockDir(t *testing.T) {
	t.Run("created private under XDG_RUNTIME_DIR", func(t *testing.T) {
		locks := privateLocks(t)
		mustAcquire(t, newDisk(t, t.TempDir(), "d.img"))
		fi, err := os.Stat(filepath.Dir(locks))
		if err != nil || fi.Mode().Perm() != 0o700 {
			t.Fatalf("lock dir: %v %v", fi, err)
		}
	})
	t.Run("falls back to TMPDIR", func(t *testing.T) {
		t.Setenv("XDG_RUNTIME_DIR", "")
		tmp := t.TempDir()
		t.Setenv("TMPDIR", tmp)
		l := mustAcquire(t, newDisk(t, t.TempDir(), "d.img"))
		want := filepath.Join(tmp, fmt.Sprintf("imgbake-%d", os.Getuid()), "locks")
		if filepath.Dir(l.path) != want {
			t.Fatalf("lock at %s, want under %s", l.path, want)
		}
	})
	t.Run("refuses a shared directory", func(t *testing.T) {
		xdg := t.TempDir()
		t.Setenv("XDG_RUNTIME_DIR", xdg)
		if err := os.Mkdir(filepath.Join(xdg, "imgbake"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(xdg, "imgbake"), 0o755); err != nil {
			t.Fatal(err)
		}
		_, err := Acquire(newDisk(t, t.TempDir(), "d.img"))
		if err == nil || !strings.Contains(err.Error(), "not a private directory") {
			t.Fatalf("Acquire with a world-writable lock dir = %v", err)
		}
	})
	t.Run("refuses a symlinked directory", func(t *testing.T) {
		xdg := t.TempDir()
		t.Setenv("XDG_RUNTIME_DIR", xdg)
		target := t.TempDir()
		if err := os.Chmod(target, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, filepath.Join(xdg, "imgbake")); err != nil {
			t.Fatal(err)
		}
		_, err := Acquire(newDisk(t, t.TempDir(), "d.img"))
		if err == nil || !strings.Contains(err.Error(), "not a private directory") {
			t.Fatalf("Acquire with a symlinked lock dir = %v", err)
		}
	})
	t.Run("refuses a symlinked lock file", func(t *testing.T) {
		privateLocks(t)
		disk := newDisk(t, t.TempDir(), "d.img")
		l := mustAcquire(t, disk) // creates the directories
		lp := l.path
		l.Release()
		victim := writeFile(t, filepath.Join(t.TempDir(), "victim"), []byte("keep me\n"))
		if err := os.Remove(lp); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(victim, lp); err != nil {
			t.Fatal(err)
		}
		if _, err := Acquire(disk); err == nil {
			t.Fatal("Acquire followed a symlinked lock file")
		}
		if b, _ := os.ReadFile(victim); string(b) != "keep me\n" {
			t.Fatalf("victim overwritten: %q", b)
		}
	})
}

// lockHolder is another process holding a lock through lockHelper.
type lockHolder struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	pid   int
}

func startHolder(t *testing.T, path string) *lockHolder {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+path)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &lockHolder{cmd: cmd, stdin: stdin}
	t.Cleanup(func() {
		stdin.Close()
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- s
	}()
	select {
	case s := <-line:
		if _, err := fmt.Sscanf(s, "locked %d", &h.pid); err != nil {
			t.Fatalf("lock helper said %q", s)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("lock helper did not start")
	}
	if h.pid != cmd.Process.Pid {
		t.Fatalf("helper pid %d, process %d", h.pid, cmd.Process.Pid)
	}
	return h
}

func TestLockAcrossProcesses(t *testing.T) {
	privateLocks(t) // inherited by the helper through the environment
	dir := t.TempDir()
	disk := newDisk(t, dir, "disk.img")
	hard := filepath.Join(dir, "hard.img")
	if err := os.Link(disk, hard); err != nil {
		t.Fatal(err)
	}

	t.Run("released on exit", func(t *testing.T) {
		h := startHolder(t, disk)
		for _, p := range []string{disk, hard} {
			_, err := Acquire(p)
			if !errors.Is(err, ErrLocked) {
				t.Fatalf("Acquire(%s) while another process holds it = %v", p, err)
			}
			if got := HolderPID(holderOf(t, err)); got != h.pid {
				t.Fatalf("holder pid %d, want %d (%v)", got, h.pid, err)
			}
			if !strings.Contains(err.Error(), "-test.run") {
				t.Errorf("holder's command line missing from %q", err)
			}
		}
		h.stdin.Close()
		if err := h.cmd.Wait(); err != nil {
			t.Fatalf("helper: %v", err)
		}
		mustAcquire(t, disk).Release()
	})

	t.Run("released when the holder is killed", func(t *testing.T) {
		h := startHolder(t, hard)
		if _, err := Acquire(disk); !errors.Is(err, ErrLocked) {
			t.Fatalf("Acquire = %v, want ErrLocked", err)
		}
		if err := h.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = h.cmd.Wait()
		l, err := Acquire(disk)
		if err != nil {
			t.Fatalf("Acquire after the holder died: %v", err)
		}
		b, _ := os.ReadFile(l.path)
		if HolderPID(string(b)) != os.Getpid() {
			t.Fatalf("lock file after takeover: %q", b)
		}
		l.Release()
	})

	t.Run("this process holds, helper is refused", func(t *testing.T) {
		l := mustAcquire(t, disk)
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), helperEnv+"="+hard)
		out, err := cmd.Output()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 3 {
			t.Fatalf("helper = %v, %q; want exit 3", err, out)
		}
		if !strings.Contains(string(out), "disk image is in use") ||
			!strings.Contains(string(out), fmt.Sprintf("locked by pid %d ", os.Getpid())) {
			t.Fatalf("helper said %q", out)
		}
		l.Release()
	})
}

func TestHolderPID(t *testing.T) {
	cases := []struct {
		text string
		want int
	}{
		{"pid 1234 (imgbake run x) since 2024-01-01T00:00:00Z on /a.img\n", 1234},
		{"pid 1", 1},
		{"  pid   42  ", 42},
		{"", 0},
		{"pid", 0},
		{"pid x (y)", 0},
		{"another imgbake process", 0},
		{"PID 12", 0},
	}
	for _, tc := range cases {
		if got := HolderPID(tc.text); got != tc.want {
			t.Errorf("HolderPID(%q) = %d, want %d", tc.text, got, tc.want)
		}
	}
}
