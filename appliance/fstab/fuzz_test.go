package fstab

import (
	"reflect"
	"strings"
	"testing"
)

// FuzzParse reads arbitrary bytes as an fstab and checks: no panic; the
// entries are exactly the lines with three blank-separated fields that are
// not comments, in order; each entry's spans are its line's fields and its
// fields what they say; a line parses alone as it did in the file; and a
// spec and file escaped into a line come back unchanged.
func FuzzParse(f *testing.F) {
	f.Add([]byte("UUID=abc / ext4 defaults 0 1\n# c\nLABEL=a\\040b\t/mnt/a\\040b xfs nofail\r\n/x /y\n"), "LABEL=my data", "/mnt/my disk")
	f.Add([]byte("  \t\n\\\\134 \\777 t\n"), `a\b`, "#x")
	f.Fuzz(func(t *testing.T, data []byte, spec, file string) {
		lines := strings.Split(string(data), "\n")
		var want []int
		for i, l := range lines {
			fields := strings.FieldsFunc(strings.TrimSuffix(l, "\r"), func(r rune) bool { return r == ' ' || r == '\t' })
			if len(fields) >= 3 && fields[0][0] != '#' {
				want = append(want, i+1)
			}
		}
		entries := Parse(data)
		if len(entries) != len(want) {
			t.Fatalf("%d entries, want %d (lines %v)", len(entries), len(want), want)
		}
		for i, e := range entries {
			if e.Line != want[i] {
				t.Fatalf("entry %d at line %d, want line %d", i, e.Line, want[i])
			}
			line := strings.TrimSuffix(lines[e.Line-1], "\r")
			end := 0
			var raw []string
			for _, sp := range e.Spans {
				if sp[0] < end || sp[1] <= sp[0] || sp[1] > len(line) {
					t.Fatalf("line %d: bad span %v in %q", e.Line, sp, line)
				}
				if strings.Trim(line[end:sp[0]], " \t") != "" || strings.ContainsAny(line[sp[0]:sp[1]], " \t") {
					t.Fatalf("line %d: span %v is not a field of %q", e.Line, sp, line)
				}
				raw = append(raw, line[sp[0]:sp[1]])
				end = sp[1]
			}
			if strings.Trim(line[end:], " \t") != "" {
				t.Fatalf("line %d: text after the last span in %q", e.Line, line)
			}
			raw = append(raw, "", "", "")
			if e.Spec != Unescape(raw[0]) || e.File != Unescape(raw[1]) || e.VFSType != raw[2] ||
				e.MntOps != raw[3] || e.Freq != raw[4] || e.PassNo != raw[5] {
				t.Fatalf("line %d: entry %+v from fields %q", e.Line, e, raw)
			}
			alone, ok := ParseLine(lines[e.Line-1])
			alone.Line = e.Line
			if !ok || !reflect.DeepEqual(alone, e) {
				t.Fatalf("line %d alone: %+v, %v; in the file: %+v", e.Line, alone, ok, e)
			}
		}
		if Unescape(Escape(spec)) != spec {
			t.Fatalf("Unescape(Escape(%q)) = %q", spec, Unescape(Escape(spec)))
		}
		if spec == "" || file == "" || spec[0] == '#' {
			return
		}
		e, ok := ParseLine(Escape(spec) + "\t" + Escape(file) + " ext4")
		if !ok || e.Spec != spec || e.File != file || e.VFSType != "ext4" {
			t.Fatalf("escaped %q %q parse as %+v, %v", spec, file, e, ok)
		}
	})
}
