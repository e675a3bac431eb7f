package recipes

import (
	"io/fs"
	"testing"

	"github.com/imgbake/imgbake/internal/filemode"
)

func TestParseMode(t *testing.T) {
	tests := []struct {
		in   string
		want fs.FileMode
		unix uint32
	}{
		{"0644", 0o644, 0o644},
		{"644", 0o644, 0o644},
		{"0o755", 0o755, 0o755},
		{"0O700", 0o700, 0o700},
		{"0", 0, 0},
		{"4755", fs.ModeSetuid | 0o755, 0o4755},
		{"2775", fs.ModeSetgid | 0o775, 0o2775},
		{"01777", fs.ModeSticky | 0o777, 0o1777},
		{"7777", fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky | 0o777, 0o7777},
	}
	for _, tt := range tests {
		got, err := parseMode(tt.in)
		if err != nil || got != tt.want || filemode.ToUnix(got) != tt.unix {
			t.Errorf("parseMode(%q) = %v, %v (unix %o), want %v (unix %o)", tt.in, got, err, filemode.ToUnix(got), tt.want, tt.unix)
		}
	}
	for _, in := range []string{"", "8", "0o", "-644", "+644", "0x1ff", "10000", "0o0o644", "6 44"} {
		if m, err := parseMode(in); err == nil {
			t.Errorf("parseMode(%q) = %v, want an error", in, m)
		}
	}
}
