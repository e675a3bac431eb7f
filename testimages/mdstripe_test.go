package testimages

import (
	"bytes"
	"math/rand"
	"testing"
)

// The layouts by hand for small arrays (chunk numbers as the kernel
// places them), then round trips and redundancy of random data; GF(2^8)
// products checked against values computed by hand.
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
		// raid6 on 4: row 0 P on 3, Q on 0, data on 1, 2; row 1 P 2, Q 3,
		// data 0, 1; row 2 P 1, Q 2, data 3, 0.
		{"raid6", MDLeftSymmetric, 4, [][][2]int{{{1, 0}}, {{2, 0}}, {{0, 1}}, {{1, 1}}, {{3, 2}}, {{0, 2}}}},
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
	}{{"raid0", 0, 2}, {"raid10", MDNear2, 4}, {"raid10", MDNear2, 5}, {"raid5", MDLeftSymmetric, 3}, {"raid5", MDLeftSymmetric, 5},
		{"raid6", MDLeftSymmetric, 4}, {"raid6", MDLeftSymmetric, 6}} {
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

func TestGFMul(t *testing.T) {
	for _, c := range []struct{ a, b, want byte }{
		{0x02, 0x80, 0x1d}, // x * x^7 = x^8 = x^4+x^3+x^2+1
		{0x53, 0x01, 0x53}, {0x00, 0x9a, 0x00},
		{0x03, 0x03, 0x05}, // (x+1)^2 = x^2+1
		{0x80, 0x80, 0x13}, // x^14 = x^10+x^9+x^8+x^6 = 0x74^0x3a^0x1d^0x40
	} {
		if got := gfMul(c.a, c.b); got != c.want {
			t.Errorf("gfMul(%#x, %#x) = %#x, want %#x", c.a, c.b, got, c.want)
		}
	}
	if gfPow2(8) != 0x1d || gfPow2(255) != 1 {
		t.Errorf("2^8 = %#x, 2^255 = %#x", gfPow2(8), gfPow2(255))
	}
}
