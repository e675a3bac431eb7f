// Package vercmp compares version strings numerically where they are
// numbers: recipes' `when` expressions, the kernel picked from /boot and
// the kernels inspect lists all order versions with it. It imports nothing
// beyond the standard library, so the agent may use it too.
package vercmp

import (
	"strconv"
	"strings"
)

// Compare compares dotted versions part by part, the parts split at '.',
// '-', '_', '~' and '+': numerically where both parts are numbers, else as
// strings; a version that runs out of parts first is the smaller. So
// "12" > "9", "2.10" > "2.9", "12" < "12.1", and "12" == "012".
func Compare(a, b string) int {
	pa, pb := parts(a), parts(b)
	for i := 0; i < len(pa) || i < len(pb); i++ {
		if i >= len(pa) {
			return -1
		}
		if i >= len(pb) {
			return 1
		}
		x, y := pa[i], pb[i]
		nx, ex := strconv.Atoi(x)
		ny, ey := strconv.Atoi(y)
		switch {
		case ex == nil && ey == nil:
			if nx != ny {
				if nx < ny {
					return -1
				}
				return 1
			}
		case x != y:
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}

// Less orders versions by Compare, and those it finds equal as strings,
// so that sorting gives one order: "6.1.0-10" after "6.1.0-9", "6.10"
// after "6.9", "6.1.0-9-amd64" before "6.1.0-9-cloud-amd64".
func Less(a, b string) bool {
	if c := Compare(a, b); c != 0 {
		return c < 0
	}
	return a < b
}

func parts(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == '.' || r == '-' || r == '_' || r == '~' || r == '+' })
}
