package appliance

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Private directories hold a run's sockets, logs and overlays. Each one
// records its owner (pid and process start time, so a recycled pid is not
// mistaken for the owner); CleanStale removes those whose owner is gone,
// which is how a run killed with SIGKILL gets cleaned up by the next one.

const (
	privPrefix = "imgbake-"
	ownerFile  = ".owner"
	// KeepFile in a private directory stops CleanStale from removing it:
	// an overlay that an interrupted commit still needs.
	KeepFile = ".keep"
)

// PrivateDir creates a 0700 directory imgbake-<kind>-* under the temp
// directory and records this process as its owner.
func PrivateDir(kind string) (string, error) {
	dir, err := os.MkdirTemp("", privPrefix+kind+"-")
	if err != nil {
		return "", fmt.Errorf("creating private directory: %w", err)
	}
	id, err := ProcessID(os.Getpid())
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, ownerFile), []byte(id+"\n"), 0o600)
	}
	if err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("creating private directory: %w", err)
	}
	return dir, nil
}

// ProcessID identifies a live process as "pid starttime" from /proc, so a
// recycled pid is never taken for the process it replaced. An exited
// process (a zombie) has no identity.
func ProcessID(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", errors.New("unparsable /proc stat")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return "", errors.New("short /proc stat")
	}
	if f[0] == "Z" || f[0] == "X" {
		return "", errors.New("process has exited")
	}
	return strconv.Itoa(pid) + " " + f[19], nil // field 22: starttime
}

// CleanStale removes private directories under the temp directory whose
// owner process no longer exists, and returns the ones it removed. Any qemu
// such an owner started died with it (parent-death signal).
func CleanStale() []string {
	entries, err := os.ReadDir(os.TempDir())
	if err != nil {
		return nil
	}
	var removed []string
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), privPrefix) {
			continue
		}
		dir := filepath.Join(os.TempDir(), e.Name())
		if !stale(dir) {
			continue
		}
		if err := os.RemoveAll(dir); err == nil {
			removed = append(removed, dir)
		}
	}
	return removed
}

func stale(dir string) bool {
	fi, err := os.Lstat(dir)
	if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		return false
	}
	if st, ok := fileOwner(fi); !ok || st != os.Getuid() {
		return false // never touch another user's files
	}
	if _, err := os.Stat(filepath.Join(dir, KeepFile)); err == nil {
		return false
	}
	b, err := os.ReadFile(filepath.Join(dir, ownerFile))
	if err != nil {
		return false // not ours, or being created right now
	}
	owner := strings.TrimSpace(string(b))
	pid, _, _ := strings.Cut(owner, " ")
	n, err := strconv.Atoi(pid)
	if err != nil || n <= 0 {
		return false
	}
	cur, err := ProcessID(n)
	return err != nil || cur != owner
}

func fileOwner(fi os.FileInfo) (int, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Uid), true
}
