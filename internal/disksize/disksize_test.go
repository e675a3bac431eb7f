package disksize

import "testing"

func TestParse(t *testing.T) {
	const cur = 1 << 30
	for _, c := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"20G", 20 << 30, true},
		{"+2G", cur + 2<<30, true},
		{"+512M", cur + 512<<20, true},
		{"2GiB", 2 << 30, true},
		{"2gb", 2 << 30, true},
		{"1.5T", 3 << 39, true},
		{"1000", 1024, true}, // rounded up to a sector
		{"+0", 0, false},
		{"-1G", 0, false},
		{"", 0, false},
		{"lots", 0, false},
		{"1e400", 0, false},
	} {
		got, err := Parse(c.in, cur)
		if (err == nil) != c.ok || (c.ok && got != c.want) {
			t.Errorf("Parse(%q) = %d, %v; want %d ok=%v", c.in, got, err, c.want, c.ok)
		}
	}
}
