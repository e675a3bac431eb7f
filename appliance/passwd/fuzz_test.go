package passwd

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParse reads arbitrary bytes as passwd, group and shadow files and
// checks: no panic; every entry line is either an entry or a malformed
// line, each once, in order; an entry's Line holds its name; ids are in
// range; and Lookup agrees with Parse (the first line of a name decides).
func FuzzParse(f *testing.F) {
	f.Add([]byte(passwdFile))
	f.Add([]byte(groupFile))
	f.Add([]byte("root:x:0:0:root:/root:/bin/bash\r\nbin:x:1:1\n+::::::\n:x:1:1\nx:y\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		lines := strings.Split(string(data), "\n")
		entryLines := 0
		for _, l := range lines {
			l = strings.TrimSuffix(l, "\r")
			if l != "" && !strings.ContainsRune("#+-", rune(l[0])) {
				entryLines++
			}
		}
		check := func(kind string, n int, names []string, at []int, bad []*LineError, lookup func(string) (int, error)) {
			if n+len(bad) != entryLines {
				t.Fatalf("%s: %d entries + %d malformed, want %d entry lines", kind, n, len(bad), entryLines)
			}
			seen := map[string]bool{}
			for i, name := range names {
				if name == "" || !strings.HasPrefix(lines[at[i]-1], name+":") {
					t.Fatalf("%s: entry %q at line %d: %q", kind, name, at[i], lines[at[i]-1])
				}
				line, err := lookup(name)
				if seen[name] {
					continue
				}
				seen[name] = true
				var le *LineError
				if err == nil && line > at[i] || errors.As(err, &le) && le.Line > at[i] || errors.Is(err, ErrNotFound) {
					t.Fatalf("%s: lookup %q = line %d, %v; parse found it at line %d", kind, name, line, err, at[i])
				}
			}
		}
		users, bad := ParseUsers(data)
		var names []string
		var at []int
		for _, u := range users {
			if u.UID < 0 || u.GID < 0 || u.UID > 1<<32-1 || u.GID > 1<<32-1 {
				t.Fatalf("user %q: ids %d:%d", u.Name, u.UID, u.GID)
			}
			names, at = append(names, u.Name), append(at, u.Line)
		}
		check("passwd", len(users), names, at, bad, func(n string) (int, error) { u, err := LookupUser(data, n); return u.Line, err })
		groups, bad := ParseGroups(data)
		names, at = nil, nil
		for _, g := range groups {
			for _, m := range g.Members {
				if m == "" || strings.TrimSpace(m) != m {
					t.Fatalf("group %q: member %q", g.Name, m)
				}
			}
			names, at = append(names, g.Name), append(at, g.Line)
		}
		check("group", len(groups), names, at, bad, func(n string) (int, error) { g, err := LookupGroup(data, n); return g.Line, err })
		shadow, bad := ParseShadow(data)
		names, at = nil, nil
		for _, s := range shadow {
			names, at = append(names, s.Name), append(at, s.Line)
		}
		check("shadow", len(shadow), names, at, bad, func(n string) (int, error) { s, err := LookupShadow(data, n); return s.Line, err })
	})
}
