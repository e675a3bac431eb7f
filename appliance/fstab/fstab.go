// Package fstab holds the bits of /etc/fstab syntax that both the agent
// (mounting an image's fstab in the guest) and fsops (rewriting it on the
// host) need. It imports nothing beyond the standard library, so the
// agent's static binary can use it.
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
