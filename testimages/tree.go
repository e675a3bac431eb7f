package testimages

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	pathpkg "path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Tree describes every entry of an ext2/3/4 filesystem, read with debugfs
// (no code shared with imgbake): path → "MODE UID:GID SIZE SHA256" for
// regular files (SHA256 of the content) and "MODE UID:GID SIZE" for the
// rest. Modification times are left out, so two images built by the same
// steps at different times compare equal.
func Tree(t testing.TB, imagePath, format string, partition int) (map[string]string, error) {
	t.Helper()
	v, err := openExtView(t, imagePath, format, partition)
	if err != nil {
		return nil, err
	}
	defer v.close()
	tmp := t.TempDir()
	out := map[string]string{}
	var files []string
	for dirs := []string{"/"}; len(dirs) > 0; {
		var cmds []string
		for _, d := range dirs {
			cmds = append(cmds, "ls -p "+debugfsQuote(d))
		}
		text, err := v.debugfsScript(tmp, cmds)
		if err != nil {
			return nil, err
		}
		var next []string
		cur := ""
		for _, line := range strings.Split(text, "\n") {
			if rest, ok := strings.CutPrefix(line, "debugfs: ls -p "); ok {
				cur = strings.ReplaceAll(strings.Trim(rest, `"`), `""`, `"`)
				continue
			}
			f := strings.Split(line, "/")
			if len(f) != 8 || f[0] != "" || f[7] != "" || f[5] == "." || f[5] == ".." || cur == "" {
				continue
			}
			mode, err := strconv.ParseUint(f[2], 8, 32)
			if err != nil {
				continue
			}
			p := pathpkg.Join(cur, f[5])
			out[p] = fmt.Sprintf("%o %s:%s %s", mode, f[3], f[4], f[6])
			switch mode & 0o170000 {
			case 0o040000:
				next = append(next, p)
			case 0o100000:
				files = append(files, p)
			}
		}
		dirs = next
	}
	var cmds []string
	for i, p := range files {
		cmds = append(cmds, fmt.Sprintf("dump %s %s", debugfsQuote(p), debugfsQuote(filepath.Join(tmp, strconv.Itoa(i)))))
	}
	if _, err := v.debugfsScript(tmp, cmds); err != nil {
		return nil, err
	}
	for i, p := range files {
		b, err := os.ReadFile(filepath.Join(tmp, strconv.Itoa(i)))
		if err != nil {
			return nil, fmt.Errorf("testimages: debugfs dump %s: %v", p, err)
		}
		sum := sha256.Sum256(b)
		out[p] += " " + hex.EncodeToString(sum[:])
	}
	return out, nil
}

// debugfsScript runs debugfs requests from a command file (one process for
// all of them) and returns what it printed, each request echoed first.
func (v *view) debugfsScript(tmp string, cmds []string) (string, error) {
	if len(cmds) == 0 {
		return "", nil
	}
	script := filepath.Join(tmp, "script")
	if err := os.WriteFile(script, []byte(strings.Join(cmds, "\n")+"\n"), 0o600); err != nil {
		return "", err
	}
	cmd := exec.Command("debugfs", "-f", script, v.device())
	cmd.Env = append(os.Environ(), "DEBUGFS_PAGER=__none__", "PAGER=__none__")
	b, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("testimages: debugfs -f: %v", err)
	}
	return string(b), nil
}
