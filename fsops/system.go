package fsops

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/imgbake/imgbake/appliance/passwd"
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

// lookupUser finds name in the image's /etc/passwd; nil when absent.
func lookupUser(ctx context.Context, s Session, name string) (*passwd.User, error) {
	data, _, err := readOptional(ctx, s, passwd.PasswdFile)
	if err != nil {
		return nil, err
	}
	u, err := passwd.LookupUser(data, name)
	switch {
	case errors.Is(err, passwd.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("/etc/passwd in the image has a bad entry for %q: %w", name, err)
	}
	return &u, nil
}

// readGroups parses the image's /etc/group, by name (a later entry of the
// same name wins); malformed lines are passed over.
func readGroups(ctx context.Context, s Session) (map[string]passwd.Group, error) {
	data, _, err := readOptional(ctx, s, passwd.GroupFile)
	if err != nil {
		return nil, err
	}
	entries, _ := passwd.ParseGroups(data)
	groups := map[string]passwd.Group{}
	for _, g := range entries {
		groups[g.Name] = g
	}
	return groups, nil
}

// shadowHash returns the password field of user in the image's
// /etc/shadow; ok is false when the user has no shadow entry.
func shadowHash(ctx context.Context, s Session, user string) (hash string, ok bool, err error) {
	data, _, err := readOptional(ctx, s, passwd.ShadowFile)
	if err != nil {
		return "", false, err
	}
	e, err := passwd.LookupShadow(data, user)
	if err != nil {
		return "", false, nil
	}
	return e.Hash, true, nil
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
// default PATH (proto.DefaultPath).
func hasProgram(ctx context.Context, s Session, name string) (string, error) {
	for _, dir := range proto.DefaultPathDirs() {
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
