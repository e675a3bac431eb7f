package vercmp

import (
	"slices"
	"testing"
)

func TestCompare(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{
		// recipes' `when` expressions rely on these.
		{"12", "9", 1}, {"2.10", "2.9", 1}, {"12", "12.1", -1}, {"12.0", "12.0", 0}, {"8.6", "9", -1}, {"1.0~rc1", "1.0", 1},
		{"012", "12", 0}, {"", "", 0}, {"", "1", -1}, {"1..2", "1.2", 0}, {"1-2_3~4+5", "1.2.3.4.5", 0},
		{"9.3", "9.3a", -1}, {"1.a", "1.b", -1}, {"1.10a", "1.9a", -1}, // "10a" is not a number: strings
		{"99999999999999999999", "9", 1}, // past int: compared as strings
		{"6.1.0-9-amd64", "6.1.0-9-cloud-amd64", -1},
	} {
		if got := Compare(tt.a, tt.b); got != tt.want {
			t.Errorf("Compare(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := Compare(tt.b, tt.a); got != -tt.want {
			t.Errorf("Compare(%q, %q) = %d, want %d", tt.b, tt.a, got, -tt.want)
		}
	}
}

func TestLess(t *testing.T) {
	for _, c := range [][2]string{
		{"/boot/vmlinuz-6.1.0-9-cloud-amd64", "/boot/vmlinuz-6.1.0-10-cloud-amd64"},
		{"/boot/vmlinuz-6.9.0-1-cloud-amd64", "/boot/vmlinuz-6.10.0-1-cloud-amd64"},
		{"5.10", "5.10.1"},
		{"6.1.0-9-amd64", "6.1.0-9-cloud-amd64"},
		{"012", "12"}, // equal by Compare: by string
		{"4.18.0-477.el8.x86_64", "4.18.0-513.el8.x86_64"},
		{"5.14.0-362.8.1.el9_3.x86_64", "5.14.0-362.13.1.el9_3.x86_64"},
	} {
		if !Less(c[0], c[1]) || Less(c[1], c[0]) {
			t.Errorf("want %s < %s", c[0], c[1])
		}
	}
	got := []string{"6.10.0", "6.1.0-10", "6.9", "6.1.0-9", "6.1.0"}
	slices.SortFunc(got, func(a, b string) int {
		if Less(a, b) {
			return -1
		}
		if Less(b, a) {
			return 1
		}
		return 0
	})
	if want := []string{"6.1.0", "6.1.0-9", "6.1.0-10", "6.9", "6.10.0"}; !slices.Equal(got, want) {
		t.Errorf("sorted: %q, want %q", got, want)
	}
}

// FuzzCompare checks that Compare is antisymmetric and reflexive and that
// Less is a strict order on any two strings.
func FuzzCompare(f *testing.F) {
	f.Add("6.1.0-9-amd64", "6.1.0-10-cloud-amd64")
	f.Add("1.0~rc1", "1.0")
	f.Fuzz(func(t *testing.T, a, b string) {
		if c, d := Compare(a, b), Compare(b, a); c != -d || c < -1 || c > 1 {
			t.Fatalf("Compare(%q, %q) = %d, Compare(%q, %q) = %d", a, b, c, b, a, d)
		}
		if Compare(a, a) != 0 || Less(a, a) {
			t.Fatalf("%q is not equal to itself", a)
		}
		if Less(a, b) == Less(b, a) && a != b {
			t.Fatalf("Less(%q, %q) = Less(%q, %q) = %v", a, b, b, a, Less(a, b))
		}
	})
}
