package passwd

import (
	"errors"
	"reflect"
	"testing"
)

const passwdFile = `root:x:0:0:root:/root:/bin/bash
# a comment:x:1:1::/:/bin/sh

daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
short:x:1001:1001
+nisuser::::::
-nisgone::::::
+
crlf:x:1002:1002::/home/crlf:/bin/sh` + "\r" + `
badid:x:abc:0::/:/bin/sh
neg:x:-1:0::/:/bin/sh
big:x:4294967296:0::/:/bin/sh
:x:5:5::/:/bin/sh
few:x:7
colons:x:1003:1003:g:/home/c:/bin/sh:extra
root:x:99:99:second root:/:/bin/sh
`

func TestParseUsers(t *testing.T) {
	users, bad := ParseUsers([]byte(passwdFile))
	want := []User{
		{Name: "root", Password: "x", UID: 0, GID: 0, GECOS: "root", Home: "/root", Shell: "/bin/bash", Line: 1},
		{Name: "daemon", Password: "x", UID: 1, GID: 1, GECOS: "daemon", Home: "/usr/sbin", Shell: "/usr/sbin/nologin", Line: 4},
		{Name: "short", Password: "x", UID: 1001, GID: 1001, Line: 5},
		{Name: "crlf", Password: "x", UID: 1002, GID: 1002, Home: "/home/crlf", Shell: "/bin/sh", Line: 9},
		{Name: "colons", Password: "x", UID: 1003, GID: 1003, GECOS: "g", Home: "/home/c", Shell: "/bin/sh:extra", Line: 15},
		{Name: "root", Password: "x", UID: 99, GID: 99, GECOS: "second root", Home: "/", Shell: "/bin/sh", Line: 16},
	}
	if !reflect.DeepEqual(users, want) {
		t.Errorf("users:\n got %+v\nwant %+v", users, want)
	}
	wantBad := []LineError{
		{10, "badid", `uid "abc" is not a number`},
		{11, "neg", `uid "-1" is not a number`},
		{12, "big", `uid "4294967296" is not a number`},
		{13, "", "no name"},
		{14, "few", "3 fields, want at least 4"},
	}
	if len(bad) != len(wantBad) {
		t.Fatalf("malformed lines: got %v, want %v", bad, wantBad)
	}
	for i, e := range bad {
		if *e != wantBad[i] {
			t.Errorf("malformed line %d: got %+v, want %+v", i, *e, wantBad[i])
		}
	}
}

func TestLookupUser(t *testing.T) {
	data := []byte(passwdFile)
	for _, c := range []struct {
		name     string
		uid      int
		line     int // of the error when uid < 0
		notFound bool
	}{
		{name: "root", uid: 0},     // the first of two entries
		{name: "short", uid: 1001}, // no GECOS, home or shell
		{name: "crlf", uid: 1002},
		{name: "badid", uid: -1, line: 10},
		{name: "few", uid: -1, line: 14},
		{name: "nobody", notFound: true},
		{name: "nisuser", notFound: true}, // NIS lines are not entries
		{name: "+nisuser", notFound: true},
		{name: "# a comment", notFound: true},
	} {
		u, err := LookupUser(data, c.name)
		var le *LineError
		switch {
		case c.notFound:
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("LookupUser(%q) = %+v, %v; want ErrNotFound", c.name, u, err)
			}
		case c.uid < 0:
			if !errors.As(err, &le) || le.Line != c.line {
				t.Errorf("LookupUser(%q) = %+v, %v; want a LineError at line %d", c.name, u, err, c.line)
			}
		case err != nil || u.Name != c.name || u.UID != c.uid:
			t.Errorf("LookupUser(%q) = %+v, %v; want uid %d", c.name, u, err, c.uid)
		}
	}
}

const groupFile = `root:x:0:
# staff:x:50:
wheel:x:10:alice, bob,,carol
nomembers:x:11
sudo:x:27:alice` + "\r" + `
bad:x:ten:alice
few:x
+nis::
wheel:x:99:mallory
`

func TestParseGroups(t *testing.T) {
	groups, bad := ParseGroups([]byte(groupFile))
	want := []Group{
		{Name: "root", Password: "x", GID: 0, Line: 1},
		{Name: "wheel", Password: "x", GID: 10, Members: []string{"alice", "bob", "carol"}, Line: 3},
		{Name: "nomembers", Password: "x", GID: 11, Line: 4},
		{Name: "sudo", Password: "x", GID: 27, Members: []string{"alice"}, Line: 5},
		{Name: "wheel", Password: "x", GID: 99, Members: []string{"mallory"}, Line: 9},
	}
	if !reflect.DeepEqual(groups, want) {
		t.Errorf("groups:\n got %+v\nwant %+v", groups, want)
	}
	if len(bad) != 2 || bad[0].Line != 6 || bad[0].Name != "bad" || bad[1].Line != 7 {
		t.Errorf("malformed lines: %v", bad)
	}
	if g, err := LookupGroup([]byte(groupFile), "wheel"); err != nil || g.GID != 10 {
		t.Errorf("LookupGroup(wheel) = %+v, %v; want the first entry, gid 10", g, err)
	}
	if _, err := LookupGroup([]byte(groupFile), "bad"); err == nil || err.Error() != `line 6: gid "ten" is not a number` {
		t.Errorf("LookupGroup(bad) = %v", err)
	}
	if _, err := LookupGroup([]byte(groupFile), "staff"); !errors.Is(err, ErrNotFound) {
		t.Errorf("LookupGroup(staff) = %v; want ErrNotFound (commented out)", err)
	}
}

func TestShadow(t *testing.T) {
	const shadow = "root:!:19000:0:99999:7:::\n#bob:old\nbob:$6$x$y:19000:0:99999:7:::\nnohash\nroot:second\n"
	entries, bad := ParseShadow([]byte(shadow))
	want := []Shadow{{"root", "!", 1}, {"bob", "$6$x$y", 3}, {"root", "second", 5}}
	if !reflect.DeepEqual(entries, want) || len(bad) != 1 || bad[0].Line != 4 {
		t.Errorf("ParseShadow = %+v, %v", entries, bad)
	}
	if s, err := LookupShadow([]byte(shadow), "bob"); err != nil || s.Hash != "$6$x$y" || s.Line != 3 {
		t.Errorf("LookupShadow(bob) = %+v, %v", s, err)
	}
	if _, err := LookupShadow([]byte(shadow), "alice"); !errors.Is(err, ErrNotFound) {
		t.Errorf("LookupShadow(alice) = %v", err)
	}
}

func TestNames(t *testing.T) {
	if got, want := UserNames([]byte(passwdFile)), map[int]string{0: "root", 1: "daemon", 1001: "short", 1002: "crlf", 1003: "colons", 99: "root"}; !reflect.DeepEqual(got, want) {
		t.Errorf("UserNames = %v, want %v", got, want)
	}
	if got, want := GroupNames([]byte(groupFile)), map[int]string{0: "root", 10: "wheel", 11: "nomembers", 27: "sudo", 99: "wheel"}; !reflect.DeepEqual(got, want) {
		t.Errorf("GroupNames = %v, want %v", got, want)
	}
	if got := UserNames([]byte("a:x:5:5\nb:x:5:5\n")); got[5] != "a" {
		t.Errorf("shared uid named %q, want the first entry's name", got[5])
	}
	if got := UserNames(nil); len(got) != 0 {
		t.Errorf("UserNames(nil) = %v", got)
	}
}
