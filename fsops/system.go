package fsops

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"strconv"
	"strings"

	"github.com/imgbake/imgbake/appliance/proto"
)

// Helpers shared by the system operations (users, passwords, services,
// cron, fstab, firstboot, ...). They read the image's own files and run its
// own tools chrooted; nothing of the appliance's leaks into the image.

// dbLimit bounds the system databases read from the image.
const dbLimit = 16 << 20

// readOptional reads a file of the image; a missing file is (nil, false).
func readOptional(ctx context.Context, s Session, path string) ([]byte, bool, error) {
	b, err := ReadFile(ctx, s, path, dbLimit)
	if err != nil {
		if isNotExist(err) {
			return nil, false, nil
		}
		return nil, false, err
	}
	return b, true, nil
}

// lstat is the agent's lstat inside the image; Exists is false for a
// missing path.
func lstat(ctx context.Context, s Session, path string) (proto.StatResult, error) {
	st, err := s.Stat(ctx, path)
	if err != nil && isNotExist(err) {
		return proto.StatResult{}, nil
	}
	return st, err
}

func isSymlink(st proto.StatResult) bool {
	return st.Exists && fs.FileMode(st.Mode)&fs.ModeSymlink != 0
}
func isDir(st proto.StatResult) bool     { return st.Exists && fs.FileMode(st.Mode).IsDir() }
func isRegular(st proto.StatResult) bool { return st.Exists && fs.FileMode(st.Mode).IsRegular() }

// symlink makes link point at target inside the image with the image's own
// ln, replacing an existing non-directory at link.
func symlink(ctx context.Context, s Session, target, link string) (Result, error) {
	res, err := Exec(ctx, s, []string{"ln", "-sfn", "--", target, link}, RunOptions{})
	if err != nil {
		return res, fmt.Errorf("ln -s %s %s: %w", target, link, err)
	}
	return Result{Changed: true}, nil
}

// listDir returns the names in dir (not recursive), using the image's find.
// A missing directory has no entries.
func listDir(ctx context.Context, s Session, dir string) ([]string, error) {
	st, err := lstat(ctx, s, dir)
	if err != nil || !st.Exists {
		return nil, err
	}
	if !isDir(st) {
		return nil, fmt.Errorf("%s is not a directory", dir)
	}
	res, err := Exec(ctx, s, []string{"find", dir, "-mindepth", "1", "-maxdepth", "1", "-print0"}, RunOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w: %s", dir, err, strings.TrimSpace(res.Stderr))
	}
	var names []string
	for p := range strings.SplitSeq(res.Stdout, "\x00") {
		if name, ok := strings.CutPrefix(p, strings.TrimSuffix(dir, "/")+"/"); ok && name != "" && !strings.Contains(name, "/") {
			names = append(names, name)
		}
	}
	return names, nil
}

// passwdEntry is one line of the image's /etc/passwd.
type passwdEntry struct {
	Name  string
	UID   int
	GID   int
	Home  string
	Shell string
}

// lookupUser finds name in the image's /etc/passwd; nil when absent.
func lookupUser(ctx context.Context, s Session, name string) (*passwdEntry, error) {
	data, _, err := readOptional(ctx, s, "/etc/passwd")
	if err != nil {
		return nil, err
	}
	for _, f := range dbLines(data, 7) {
		if f[0] != name {
			continue
		}
		uid, err1 := strconv.Atoi(f[2])
		gid, err2 := strconv.Atoi(f[3])
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("/etc/passwd in the image has a bad entry for %q", name)
		}
		return &passwdEntry{Name: f[0], UID: uid, GID: gid, Home: f[5], Shell: f[6]}, nil
	}
	return nil, nil
}

// groupEntry is one line of the image's /etc/group.
type groupEntry struct {
	Name    string
	GID     int
	Members []string
}

// readGroups parses the image's /etc/group.
func readGroups(ctx context.Context, s Session) (map[string]groupEntry, error) {
	data, _, err := readOptional(ctx, s, "/etc/group")
	if err != nil {
		return nil, err
	}
	groups := map[string]groupEntry{}
	for _, f := range dbLines(data, 4) {
		gid, err := strconv.Atoi(f[2])
		if err != nil {
			continue
		}
		var members []string
		for m := range strings.SplitSeq(f[3], ",") {
			if m = strings.TrimSpace(m); m != "" {
				members = append(members, m)
			}
		}
		groups[f[0]] = groupEntry{Name: f[0], GID: gid, Members: members}
	}
	return groups, nil
}

// dbLines splits a colon-separated database into entries with at least n
// fields, skipping comments and NIS "+"/"-" lines.
func dbLines(data []byte, n int) [][]string {
	var out [][]string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' || line[0] == '+' || line[0] == '-' {
			continue
		}
		f := strings.Split(line, ":")
		if len(f) >= n {
			out = append(out, f)
		}
	}
	return out
}

// shadowHash returns the password field of user in the image's
// /etc/shadow; ok is false when the user has no shadow entry.
func shadowHash(ctx context.Context, s Session, user string) (hash string, ok bool, err error) {
	data, _, err := readOptional(ctx, s, "/etc/shadow")
	if err != nil {
		return "", false, err
	}
	for _, f := range dbLines(data, 2) {
		if f[0] == user {
			return f[1], true, nil
		}
	}
	return "", false, nil
}

// loginDefs returns the value of key in the image's /etc/login.defs, or "".
func loginDefs(ctx context.Context, s Session, key string) (string, error) {
	data, _, err := readOptional(ctx, s, "/etc/login.defs")
	if err != nil {
		return "", err
	}
	val := ""
	for line := range strings.Lines(string(data)) {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == key {
			val = f[1]
		}
	}
	return val, nil
}

// hasProgram reports whether the image has an executable named name on the
// default PATH.
func hasProgram(ctx context.Context, s Session, name string) (string, error) {
	for _, dir := range []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"} {
		p := dir + "/" + name
		st, err := s.Stat(ctx, p)
		if err != nil {
			if isNotExist(err) {
				continue
			}
			return "", err
		}
		if st.Exists && (fs.FileMode(st.Mode).IsRegular() || fs.FileMode(st.Mode)&fs.ModeSymlink != 0) {
			return p, nil
		}
	}
	return "", nil
}

// joinDetail joins the non-empty parts of a result's detail.
func joinDetail(parts ...string) string {
	var keep []string
	for _, p := range parts {
		if p != "" {
			keep = append(keep, p)
		}
	}
	return strings.Join(keep, "; ")
}

// changed merges a sub-operation's result into res.
func (r *Result) merge(o Result) {
	r.Changed = r.Changed || o.Changed
}
