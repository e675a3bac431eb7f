package testimages

import (
	"bytes"
	"math/rand"
	"testing"
)

// The layouts by hand for small arrays (chunk numbers as the kernel
// places them), then round trips and redundancy of random data.
func TestMDLayouts(t *testing.T) {
	for _, c := range []struct {
		level  string
		layout uint32
		n      int
		want   [][][2]int // chunks 0.. : places (member, row)
	}{
		{"raid0", 0, 3, [][][2]int{{{0, 0}}, {{1, 0}}, {{2, 0}}, {{0, 1}}}},
		{"raid10", MDNear2, 4, [][][2]int{{{0, 0}, {1, 0}}, {{2, 0}, {3, 0}}, {{0, 1}, {1, 1}}}},
		{"raid10", MDNear2, 3, [][][2]int{{{0, 0}, {1, 0}}, {{2, 0}, {0, 1}}, {{1, 1}, {2, 1}}}},
		// left-symmetric on 3: row 0 parity on 2, data 0,1 on members 0,1;
		// row 1 parity on 1, data on 2, 0; row 2 parity on 0, data on 1, 2.
		{"raid5", MDLeftSymmetric, 3, [][][2]int{{{0, 0}}, {{1, 0}}, {{2, 1}}, {{0, 1}}, {{1, 2}}, {{2, 2}}}},
	} {
		g, err := newMDGeometry(c.level, c.layout, c.n, 512)
		if err != nil {
			t.Fatal(err)
		}
		for k, want := range c.want {
			got := g.places(k)
			for i := range got {
				got[i][1] /= 512
			}
			if len(got) != len(want) {
				t.Fatalf("%s/%d chunk %d: %v, want %v", c.level, c.n, k, got, want)
			}
			for i := range got {
				if got[i] != want[i] {
					t.Errorf("%s/%d chunk %d: %v, want %v", c.level, c.n, k, got, want)
				}
			}
		}
	}
	rng := rand.New(rand.NewSource(1))
	for _, c := range []struct {
		level  string
		layout uint32
		n      int
	}{{"raid0", 0, 2}, {"raid10", MDNear2, 4}, {"raid10", MDNear2, 5}, {"raid5", MDLeftSymmetric, 3}, {"raid5", MDLeftSymmetric, 5}} {
		const chunk, member = 4096, 64 << 10
		size, err := MDArrayBytes(c.level, c.layout, c.n, chunk, member)
		if err != nil {
			t.Fatal(err)
		}
		data := make([]byte, size)
		rng.Read(data)
		members, err := StripeMD(c.level, c.layout, c.n, chunk, member, data)
		if err != nil {
			t.Fatal(err)
		}
		if err := CheckMDRedundancy(c.level, c.layout, chunk, members); err != nil {
			t.Errorf("%s/%d: %v", c.level, c.n, err)
		}
		back, err := UnstripeMD(c.level, c.layout, chunk, members)
		if err != nil || !bytes.Equal(back, data) {
			t.Errorf("%s/%d: the data read back differs (%v)", c.level, c.n, err)
		}
		members[c.n-1][100] ^= 1
		if c.level != "raid0" && CheckMDRedundancy(c.level, c.layout, chunk, members) == nil {
			t.Errorf("%s/%d: a flipped bit went unnoticed", c.level, c.n)
		}
	}
}
