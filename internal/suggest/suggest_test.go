package suggest

import "testing"

func TestClosest(t *testing.T) {
	names := []string{"machine-id", "logfiles", "tmp-files", "run"}
	for _, c := range []struct{ in, want string }{
		{"machine_id", "machine-id"},
		{"logfile", "logfiles"},
		{"tmpfiles", "tmp-files"},
		{"x", ""},
		{"rn", "run"},
		{"completely-different", ""},
	} {
		if got := Closest(c.in, names); got != c.want {
			t.Errorf("Closest(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	if d := Distance("kitten", "sitting"); d != 3 {
		t.Errorf("Distance = %d, want 3", d)
	}
}
