// Package passwd parses an image's account databases: /etc/passwd,
// /etc/group and /etc/shadow. The agent resolves owners with it and the
// host's user and password steps read the same files with it, so both
// sides agree on what an entry is. It imports nothing beyond the standard
// library, so the agent's static binary can use it.
//
// The files are read as glibc's files backend reads them: one entry a
// line, fields separated by ':'; blank lines, comments ('#') and NIS
// compat lines ('+' or '-' first) are not entries; a final '\r' is
// dropped. A passwd entry needs at least name, password, uid and gid (the
// GECOS, home and shell fields may be missing: they are then empty), a
// group entry name, password and gid, a shadow entry name and hash. Ids
// are decimal numbers below 2^32. A line that is an entry by its first
// character but not a valid one is malformed: Parse functions report it
// as a LineError and Lookup functions fail with one when it holds the name
// looked up, rather than passing over it to a later line.
package passwd

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// The files, as paths inside the image.
const (
	PasswdFile = "/etc/passwd"
	GroupFile  = "/etc/group"
	ShadowFile = "/etc/shadow"
)

// User is one entry of /etc/passwd.
type User struct {
	Name, Password     string
	UID, GID           int
	GECOS, Home, Shell string
	Line               int // 1-based line number in the file
}

// Group is one entry of /etc/group.
type Group struct {
	Name, Password string
	GID            int
	Members        []string // the supplementary members, blanks trimmed, empty names dropped
	Line           int
}

// Shadow is one entry of /etc/shadow: the fields after the hash (aging,
// expiry) are not parsed.
type Shadow struct {
	Name, Hash string
	Line       int
}

// LineError is a malformed entry line.
type LineError struct {
	Line   int
	Name   string // the line's first field
	Reason string
}

func (e *LineError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Reason) }

// ErrNotFound means no entry has the name looked up.
var ErrNotFound = errors.New("no such entry")

// records calls fn with the line number and the fields (at most max; the
// last one holds the rest of the line) of every line that is an entry.
// fn returns false to stop.
func records(data []byte, max int, fn func(line int, f []string) bool) {
	s := string(data)
	for n := 1; s != ""; n++ {
		line, rest, _ := strings.Cut(s, "\n")
		s = rest
		line = strings.TrimSuffix(line, "\r")
		if line == "" || line[0] == '#' || line[0] == '+' || line[0] == '-' {
			continue
		}
		if !fn(n, strings.SplitN(line, ":", max)) {
			return
		}
	}
}

// check checks an entry's field count and name, and parses its ids: the
// fields after name and password, named by ids ("uid", "gid").
func check(line int, f []string, n int, ids ...string) ([]int, *LineError) {
	switch {
	case len(f) < n:
		return nil, &LineError{line, f[0], fmt.Sprintf("%d fields, want at least %d", len(f), n)}
	case f[0] == "":
		return nil, &LineError{line, "", "no name"}
	}
	out := make([]int, len(ids))
	for i, what := range ids {
		v, err := strconv.ParseUint(f[2+i], 10, 32)
		if err != nil {
			return nil, &LineError{line, f[0], fmt.Sprintf("%s %q is not a number", what, f[2+i])}
		}
		out[i] = int(v)
	}
	return out, nil
}

func parseUser(line int, f []string) (User, *LineError) {
	ids, e := check(line, f, 4, "uid", "gid")
	if e != nil {
		return User{}, e
	}
	f = append(f, "", "", "")
	return User{Name: f[0], Password: f[1], UID: ids[0], GID: ids[1], GECOS: f[4], Home: f[5], Shell: f[6], Line: line}, nil
}

func parseGroup(line int, f []string) (Group, *LineError) {
	ids, e := check(line, f, 3, "gid")
	if e != nil {
		return Group{}, e
	}
	g := Group{Name: f[0], Password: f[1], GID: ids[0], Line: line}
	if len(f) > 3 {
		for m := range strings.SplitSeq(f[3], ",") {
			if m = strings.TrimSpace(m); m != "" {
				g.Members = append(g.Members, m)
			}
		}
	}
	return g, nil
}

func parseShadow(line int, f []string) (Shadow, *LineError) {
	if _, e := check(line, f, 2); e != nil {
		return Shadow{}, e
	}
	return Shadow{Name: f[0], Hash: f[1], Line: line}, nil
}

// parseAll parses every entry, splitting off the malformed ones.
func parseAll[T any](data []byte, max int, parse func(int, []string) (T, *LineError)) (out []T, bad []*LineError) {
	records(data, max, func(line int, f []string) bool {
		if v, e := parse(line, f); e != nil {
			bad = append(bad, e)
		} else {
			out = append(out, v)
		}
		return true
	})
	return out, bad
}

// lookup parses the first entry line named name.
func lookup[T any](data []byte, max int, name string, parse func(int, []string) (T, *LineError)) (T, error) {
	var v T
	err := ErrNotFound
	records(data, max, func(line int, f []string) bool {
		if f[0] != name {
			return true
		}
		var e *LineError
		if v, e = parse(line, f); e != nil {
			err = e
		} else {
			err = nil
		}
		return false
	})
	return v, err
}

// ParseUsers returns the entries of a passwd file, and its malformed lines.
func ParseUsers(data []byte) ([]User, []*LineError) { return parseAll(data, 7, parseUser) }

// ParseGroups returns the entries of a group file, and its malformed lines.
func ParseGroups(data []byte) ([]Group, []*LineError) { return parseAll(data, 4, parseGroup) }

// ParseShadow returns the entries of a shadow file, and its malformed
// lines.
func ParseShadow(data []byte) ([]Shadow, []*LineError) { return parseAll(data, 3, parseShadow) }

// LookupUser returns the user named name: ErrNotFound when no line is
// named so, a *LineError when the first line that is is malformed.
func LookupUser(data []byte, name string) (User, error) { return lookup(data, 7, name, parseUser) }

// LookupGroup is LookupUser for a group file.
func LookupGroup(data []byte, name string) (Group, error) { return lookup(data, 4, name, parseGroup) }

// LookupShadow is LookupUser for a shadow file.
func LookupShadow(data []byte, name string) (Shadow, error) {
	return lookup(data, 3, name, parseShadow)
}

// UserNames maps the uids of a passwd file to names; where entries share
// a uid the first one names it, as ls(1) would.
func UserNames(data []byte) map[int]string {
	users, _ := ParseUsers(data)
	return firstNames(users, func(u User) (int, string) { return u.UID, u.Name })
}

// GroupNames is UserNames for the gids of a group file.
func GroupNames(data []byte) map[int]string {
	groups, _ := ParseGroups(data)
	return firstNames(groups, func(g Group) (int, string) { return g.GID, g.Name })
}

func firstNames[T any](entries []T, idName func(T) (int, string)) map[int]string {
	out := make(map[int]string, len(entries))
	for _, e := range entries {
		if id, name := idName(e); out[id] == "" {
			out[id] = name
		}
	}
	return out
}
