package fsops

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/imgbake/imgbake/appliance/passwd"
)

// Users on images without shadow's useradd/usermod: Alpine's busybox
// adduser/addgroup where the image has them, else /etc/passwd, /etc/group,
// /etc/shadow (and /etc/gshadow where it exists) edited by imgbake, each
// file rewritten atomically keeping its mode and owner, as useradd would
// leave them.

const gshadowFile = "/etc/gshadow"

// Default id range for new users and groups, as useradd's login.defs has it.
const (
	defaultIDMin = 1000
	defaultIDMax = 60000
)

// isBusyboxApplet reports whether the program at p is a link to busybox
// (Alpine's adduser), whose options differ from Debian's adduser script.
func isBusyboxApplet(ctx context.Context, s Session, p string) (bool, error) {
	r, err := s.Realpath(ctx, p)
	if err != nil {
		return false, err
	}
	return r.Exists && path.Base(r.Path) == "busybox", nil
}

// createUserBusybox creates u with busybox's adduser (-D: no password
// prompt) and adds it to its groups with addgroup USER GROUP.
func createUserBusybox(ctx context.Context, s Session, u UserSpec, groups map[string]passwd.Group) (Result, error) {
	argv := []string{"adduser", "-D"}
	if u.UID != nil {
		argv = append(argv, "-u", strconv.Itoa(*u.UID))
	}
	if u.Shell != "" {
		argv = append(argv, "-s", u.Shell)
	}
	if u.Home != "" {
		argv = append(argv, "-h", u.Home)
	}
	if _, ok := groups[u.Name]; ok {
		argv = append(argv, "-G", u.Name) // its own group exists already
	}
	res, err := Exec(ctx, s, append(argv, u.Name), RunOptions{})
	if err != nil {
		return Result{RC: res.RC, Stderr: res.Stderr}, fmt.Errorf("busybox adduser: %w", err)
	}
	for _, g := range u.Groups {
		if res, err := Exec(ctx, s, []string{"addgroup", u.Name, g}, RunOptions{}); err != nil {
			return Result{RC: res.RC, Stderr: res.Stderr}, fmt.Errorf("busybox addgroup %s %s: %w", u.Name, g, err)
		}
	}
	return Result{Changed: true}, nil
}

// userDB is the account files of an image, read for editing.
type userDB struct {
	passwdPath, groupPath, shadowPath, gshadowPath string // resolved; "" when the file is missing (shadow, gshadow)
	passwd, group, shadow, gshadow                 string
}

func readUserDB(ctx context.Context, s Session) (*userDB, error) {
	db := &userDB{}
	for _, f := range []struct {
		name     string
		path     *string
		data     *string
		required bool
	}{
		{passwd.PasswdFile, &db.passwdPath, &db.passwd, true},
		{passwd.GroupFile, &db.groupPath, &db.group, true},
		{passwd.ShadowFile, &db.shadowPath, &db.shadow, false},
		{gshadowFile, &db.gshadowPath, &db.gshadow, false},
	} {
		real, exists, err := resolveFile(ctx, s, f.name)
		if err != nil {
			return nil, err
		}
		if !exists {
			if f.required {
				return nil, fmt.Errorf("the image has no %s", f.name)
			}
			continue
		}
		b, err := ReadFile(ctx, s, real, dbLimit)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", f.name, err)
		}
		*f.path, *f.data = real, string(b)
	}
	return db, nil
}

// write writes back the files whose contents differ from old, group files
// first so that a failure part-way leaves no user without its group.
func (db *userDB) write(ctx context.Context, s Session, old *userDB) error {
	for _, f := range []struct{ path, data, old, name string }{
		{db.groupPath, db.group, old.group, passwd.GroupFile},
		{db.gshadowPath, db.gshadow, old.gshadow, gshadowFile},
		{db.passwdPath, db.passwd, old.passwd, passwd.PasswdFile},
		{db.shadowPath, db.shadow, old.shadow, passwd.ShadowFile},
	} {
		if f.path == "" || f.data == f.old {
			continue
		}
		if _, err := WriteFile(ctx, s, f.path, strings.NewReader(f.data), WriteOptions{}); err != nil {
			return fmt.Errorf("writing %s: %w", f.name, err)
		}
	}
	return nil
}

// appendLine adds line at the end of a file's text.
func appendLine(data, line string) string {
	if data != "" && !strings.HasSuffix(data, "\n") {
		data += "\n"
	}
	return data + line + "\n"
}

// editLine rewrites the 1-based line n of data through edit, which gets
// and returns the line's colon-separated fields.
func editLine(data string, n int, edit func(f []string) []string) string {
	lines := strings.Split(data, "\n")
	if n < 1 || n > len(lines) {
		return data
	}
	lines[n-1] = strings.Join(edit(strings.Split(strings.TrimSuffix(lines[n-1], "\r"), ":")), ":")
	return strings.Join(lines, "\n")
}

// addMember adds user to the member list (field 4) of the group line n
// of an /etc/group or /etc/gshadow text.
func addMember(data string, n int, user string) string {
	return editLine(data, n, func(f []string) []string {
		for len(f) < 4 {
			f = append(f, "")
		}
		var members []string
		for m := range strings.SplitSeq(f[3], ",") {
			if m = strings.TrimSpace(m); m != "" {
				members = append(members, m)
			}
		}
		if !slices.Contains(members, user) {
			members = append(members, user)
		}
		f[3] = strings.Join(members, ",")
		return f
	})
}

// gshadowLine is the line number of group name in an /etc/gshadow text; 0
// when it has none.
func gshadowLine(data, name string) int {
	for i, l := range strings.Split(data, "\n") {
		if n, _, ok := strings.Cut(l, ":"); ok && n == name {
			return i + 1
		}
	}
	return 0
}

// freeID is the lowest id in [min, max] not in used.
func freeID(used map[int]bool, min, max int) (int, bool) {
	for id := min; id <= max; id++ {
		if !used[id] {
			return id, true
		}
	}
	return 0, false
}

// idRange is login.defs' KEY_MIN..KEY_MAX (UID or GID), else useradd's
// defaults.
func idRange(ctx context.Context, s Session, key string) (int, int, error) {
	lo, hi := defaultIDMin, defaultIDMax
	for _, v := range []struct {
		key string
		dst *int
	}{{key + "_MIN", &lo}, {key + "_MAX", &hi}} {
		val, err := loginDefs(ctx, s, v.key)
		if err != nil {
			return 0, 0, err
		}
		if n, err := strconv.Atoi(val); err == nil && n > 0 {
			*v.dst = n
		}
	}
	return lo, hi, nil
}

// createUserFiles creates u by editing the account files, the way useradd
// -m would: a new uid from login.defs' range (or u.UID), a group of the
// user's name (reused if it exists), a locked password, membership of
// u.Groups and a home directory (0755, as busybox adduser makes it) filled
// from /etc/skel.
func createUserFiles(ctx context.Context, s Session, u UserSpec) (Result, error) {
	db, err := readUserDB(ctx, s)
	if err != nil {
		return Result{}, err
	}
	old := *db
	users, _ := passwd.ParseUsers([]byte(db.passwd))
	groupList, _ := passwd.ParseGroups([]byte(db.group))
	usedUID, usedGID := map[int]bool{}, map[int]bool{}
	for _, e := range users {
		usedUID[e.UID] = true
	}
	groups := map[string]passwd.Group{}
	for _, g := range groupList {
		usedGID[g.GID] = true
		if _, seen := groups[g.Name]; !seen {
			groups[g.Name] = g
		}
	}
	uidMin, uidMax, err := idRange(ctx, s, "UID")
	if err != nil {
		return Result{}, err
	}
	var uid int
	if u.UID != nil {
		if usedUID[*u.UID] {
			return Result{}, fmt.Errorf("cannot create user %q: uid %d is taken in /etc/passwd", u.Name, *u.UID)
		}
		uid = *u.UID
	} else {
		var ok bool
		if uid, ok = freeID(usedUID, uidMin, uidMax); !ok {
			return Result{}, fmt.Errorf("cannot create user %q: no free uid in %d-%d", u.Name, uidMin, uidMax)
		}
	}
	gid := uid
	if g, ok := groups[u.Name]; ok {
		gid = g.GID
	} else {
		if usedGID[gid] {
			gidMin, gidMax, err := idRange(ctx, s, "GID")
			if err != nil {
				return Result{}, err
			}
			var ok bool
			if gid, ok = freeID(usedGID, gidMin, gidMax); !ok {
				return Result{}, fmt.Errorf("cannot create the group of user %q: no free gid in %d-%d", u.Name, gidMin, gidMax)
			}
		}
		db.group = appendLine(db.group, fmt.Sprintf("%s:x:%d:", u.Name, gid))
		if db.gshadowPath != "" {
			db.gshadow = appendLine(db.gshadow, u.Name+":!::")
		}
	}
	for _, name := range u.Groups {
		g := groups[name] // EnsureUser checked they exist
		if g.GID == gid {
			continue
		}
		db.group = addMember(db.group, g.Line, u.Name)
		if n := gshadowLine(db.gshadow, name); n > 0 {
			db.gshadow = addMember(db.gshadow, n, u.Name)
		}
	}
	home, shell := u.Home, u.Shell
	if home == "" {
		home = "/home/" + u.Name
	}
	if shell == "" {
		shell = "/bin/sh"
	}
	pwField := "!"
	if db.shadowPath != "" {
		pwField = "x"
		day := strconv.FormatInt(time.Now().Unix()/86400, 10)
		db.shadow = appendLine(db.shadow, u.Name+":!:"+day+":0:99999:7:::")
	}
	db.passwd = appendLine(db.passwd, fmt.Sprintf("%s:%s:%d:%d::%s:%s", u.Name, pwField, uid, gid, home, shell))
	if err := db.write(ctx, s, &old); err != nil {
		return Result{}, err
	}
	if err := makeHome(ctx, s, home, uid, gid); err != nil {
		return Result{}, err
	}
	return Result{Changed: true}, nil
}

// makeHome creates a new user's home directory from /etc/skel with the
// image's cp and chown; an existing directory is left alone.
func makeHome(ctx context.Context, s Session, home string, uid, gid int) error {
	st, err := lstat(ctx, s, home)
	if err != nil || st.Exists {
		return err
	}
	owner := strconv.Itoa(uid) + ":" + strconv.Itoa(gid)
	if _, err := Mkdir(ctx, s, home, WriteOptions{Mode: ptr(fs.FileMode(0o755)), Owner: owner}); err != nil {
		return fmt.Errorf("creating the home directory %s: %w", home, err)
	}
	skel, err := listDir(ctx, s, "/etc/skel")
	if err != nil || len(skel) == 0 {
		return err
	}
	for _, argv := range [][]string{{"cp", "-a", "/etc/skel/.", home}, {"chown", "-R", owner, home}} {
		if res, err := Exec(ctx, s, argv, RunOptions{}); err != nil {
			return fmt.Errorf("filling %s from /etc/skel: %s: %w: %s", home, argv[0], err, strings.TrimSpace(res.Stderr))
		}
	}
	return nil
}

// updateUserFiles is usermod for images without it: the uid, shell and
// home fields of cur's passwd line (a new home directory is created, the
// old one is not moved) and membership of the groups in missing.
func updateUserFiles(ctx context.Context, s Session, u UserSpec, cur *passwd.User, missing []string) error {
	db, err := readUserDB(ctx, s)
	if err != nil {
		return err
	}
	old := *db
	line, err := passwd.LookupUser([]byte(db.passwd), u.Name)
	if err != nil {
		return fmt.Errorf("/etc/passwd: %s: %w", u.Name, err)
	}
	db.passwd = editLine(db.passwd, line.Line, func(f []string) []string {
		for len(f) < 7 {
			f = append(f, "")
		}
		if u.UID != nil {
			f[2] = strconv.Itoa(*u.UID)
		}
		if u.Shell != "" {
			f[6] = u.Shell
		}
		if u.Home != "" {
			f[5] = u.Home
		}
		return f
	})
	groupList, _ := passwd.ParseGroups([]byte(db.group))
	for _, name := range missing {
		i := slices.IndexFunc(groupList, func(g passwd.Group) bool { return g.Name == name })
		if i < 0 {
			return fmt.Errorf("group %q does not exist in the image", name)
		}
		db.group = addMember(db.group, groupList[i].Line, u.Name)
		if n := gshadowLine(db.gshadow, name); n > 0 {
			db.gshadow = addMember(db.gshadow, n, u.Name)
		}
	}
	if err := db.write(ctx, s, &old); err != nil {
		return err
	}
	if u.Home != "" && path.Clean(u.Home) != path.Clean(cur.Home) {
		uid := cur.UID
		if u.UID != nil {
			uid = *u.UID
		}
		return makeHome(ctx, s, u.Home, uid, cur.GID)
	}
	return nil
}
