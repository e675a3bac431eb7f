package fstab

import "testing"

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{
		`/mnt/my\040disk`: "/mnt/my disk",
		`a\011b`:          "a\tb",
		`plain`:           "plain",
		`trailing\04`:     `trailing\04`, // too short: kept
		`bad\09x`:         `bad\09x`,     // not octal: kept
	} {
		if got := Unescape(in); got != want {
			t.Errorf("Unescape(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHasOption(t *testing.T) {
	for _, c := range []struct {
		opts, o string
		want    bool
	}{
		{"defaults,nofail", "nofail", true},
		{"defaults,nofailx", "nofail", false},
		{"bind", "bind", true},
		{"rbind", "bind", false},
		{"", "bind", false},
	} {
		if got := HasOption(c.opts, c.o); got != c.want {
			t.Errorf("HasOption(%q, %q) = %v", c.opts, c.o, got)
		}
	}
}
