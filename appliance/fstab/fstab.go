// Package fstab is /etc/fstab's syntax, for both the agent (mounting an
// image's fstab in the guest, checking it) and fsops (rewriting it on the
// host). It imports nothing beyond the standard library, so the agent's
// static binary can use it.
//
// As fstab(5) has it: one entry a line, fields separated by blanks
// (spaces and tabs); blank lines and lines whose first field starts with
// '#' are not entries, nor are lines with fewer than the three fields
// spec, file and vfstype; a final '\r' is ignored. Blanks inside spec and
// file are written as octal escapes (\040).
package fstab

import (
	"strconv"
	"strings"
)

// Unescape undoes fstab's octal escapes (\040 for a space) in a field.
func Unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// HasOption reports whether the comma-separated options contain o.
func HasOption(opts, o string) bool {
	for _, x := range strings.Split(opts, ",") {
		if x == o {
			return true
		}
	}
	return false
}

// Entry is one entry of an fstab.
type Entry struct {
	Line       int    // 1-based line number (Parse; 0 from ParseLine)
	Spec, File string // unescaped
	VFSType    string
	MntOps     string // as written; "" when the line has no options field
	Freq       string // "" when absent
	PassNo     string // "" when absent
	// Spans are the [start, end) byte offsets of the line's fields as
	// written, for editing the line in place.
	Spans [][2]int
}

// ParseLine parses one line of an fstab (with or without its line
// ending); ok is false when the line is not an entry.
func ParseLine(line string) (e Entry, ok bool) {
	line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	start := -1
	for i := 0; i <= len(line); i++ {
		blank := i == len(line) || line[i] == ' ' || line[i] == '\t'
		switch {
		case !blank && start < 0:
			start = i
		case blank && start >= 0:
			e.Spans = append(e.Spans, [2]int{start, i})
			start = -1
		}
	}
	if len(e.Spans) < 3 || line[e.Spans[0][0]] == '#' {
		return Entry{}, false
	}
	field := func(i int) string {
		if i < len(e.Spans) {
			return line[e.Spans[i][0]:e.Spans[i][1]]
		}
		return ""
	}
	e.Spec, e.File, e.VFSType = Unescape(field(0)), Unescape(field(1)), field(2)
	e.MntOps, e.Freq, e.PassNo = field(3), field(4), field(5)
	return e, true
}

// Parse returns the entries of an fstab, in order.
func Parse(data []byte) []Entry {
	var out []Entry
	s := string(data)
	for n := 1; s != ""; n++ {
		var line string
		line, s, _ = strings.Cut(s, "\n")
		if e, ok := ParseLine(line); ok {
			e.Line = n
			out = append(out, e)
		}
	}
	return out
}

// Escape writes the blanks, newlines and backslashes of a spec or file
// field as the octal escapes fstab uses; Unescape reverses it.
func Escape(s string) string { return escaper.Replace(s) }

var escaper = strings.NewReplacer("\\", `\134`, " ", `\040`, "\t", `\011`, "\n", `\012`)
