package fsops

import (
	"bytes"
	"strings"
	"testing"
)

// TestAskPasswordNotATerminal: without a terminal the password is the first
// line of the input, its line ending dropped, and nothing is prompted.
func TestAskPasswordNotATerminal(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{"s3cret pass\r\nsecond line\n", "s3cret pass", ""},
		{"no newline", "no newline", ""},
		{"", "", "no password given: use --password-file, --random, or type it on a terminal"},
		{"\nlater\n", "", "the password is empty"},
	} {
		var prompt bytes.Buffer
		got, err := AskPassword(strings.NewReader(tc.in), &prompt, "root")
		if got != tc.want || (err == nil) != (tc.err == "") || (err != nil && err.Error() != tc.err) {
			t.Errorf("AskPassword(%q) = %q, %v; want %q, %q", tc.in, got, err, tc.want, tc.err)
		}
		if prompt.Len() != 0 {
			t.Errorf("AskPassword(%q) prompted %q without a terminal", tc.in, prompt.String())
		}
	}
}
