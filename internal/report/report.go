// Package report writes what imgbake's commands print for people: the
// inspection of an image, fstab checks and fixes, directory listings, the
// appliance. Every name that comes from the image goes through SafeName, so
// a hostile image cannot put escape sequences on the user's terminal.
package report

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// SafeName makes a name from the image printable on a terminal: names with
// control characters (escape sequences, newlines) or invalid UTF-8 are
// shown quoted, Go style.
func SafeName(s string) string {
	if !utf8.ValidString(s) {
		return strconv.Quote(s)
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return strconv.Quote(s)
		}
	}
	return s
}

func sortedKeys(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }

// IndentWriter prefixes every line written through it; Flush ends a last
// line that has no newline.
type IndentWriter struct {
	W      io.Writer
	Prefix string
	buf    []byte
}

func (iw *IndentWriter) Write(p []byte) (int, error) {
	iw.buf = append(iw.buf, p...)
	for {
		i := strings.IndexByte(string(iw.buf), '\n')
		if i < 0 {
			break
		}
		fmt.Fprintf(iw.W, "%s%s\n", iw.Prefix, strings.TrimRight(string(iw.buf[:i]), "\r"))
		iw.buf = iw.buf[i+1:]
	}
	return len(p), nil
}

// Flush writes what is left of a last line without a newline.
func (iw *IndentWriter) Flush() {
	if len(iw.buf) > 0 {
		fmt.Fprintf(iw.W, "%s%s\n", iw.Prefix, string(iw.buf))
		iw.buf = nil
	}
}
