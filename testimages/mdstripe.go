package testimages

import (
	"bytes"
	"fmt"
)

// The data layouts of md's raid0, raid10 (near=2), raid5 and raid6
// (left-symmetric), as the kernel reads them (drivers/md/raid0.c,
// raid10.c, raid5.c raid5_compute_sector; raid6's Q syndrome as
// lib/raid6 computes it, over GF(2^8) with the polynomial 0x11d and
// generator 2): StripeMD lays an array's data out on its members' data
// areas, UnstripeMD reads it back from them, and CheckMDRedundancy checks
// the copies or the parity. The kernel in the
// appliance is what these are tested against: an array they wrote has to
// assemble and mount there, and what it wrote has to read back here.

// mdGeometry is an array's layout: n members, chunk bytes a chunk.
type mdGeometry struct {
	level    string
	n, chunk int
}

func newMDGeometry(level string, layout uint32, members, chunkBytes int) (mdGeometry, error) {
	g := mdGeometry{level: level, n: members, chunk: chunkBytes}
	if chunkBytes <= 0 || chunkBytes%512 != 0 {
		return g, fmt.Errorf("chunk of %d bytes", chunkBytes)
	}
	switch {
	case level == "raid0" && members >= 2,
		level == "raid10" && layout == MDNear2 && members >= 2,
		level == "raid5" && layout == MDLeftSymmetric && members >= 3,
		level == "raid6" && layout == MDLeftSymmetric && members >= 4:
		return g, nil
	}
	return g, fmt.Errorf("%s with layout %#x on %d members: not a layout written here", level, layout, members)
}

// dataChunks is how many chunks of data a member of memberBytes holds.
func (g mdGeometry) dataChunks(memberBytes int) int {
	rows := memberBytes / g.chunk
	switch g.level {
	case "raid10":
		return rows * g.n / 2
	case "raid5":
		return rows * (g.n - 1)
	case "raid6":
		return rows * (g.n - 2)
	}
	return rows * g.n
}

// parityDisks are the members holding row's P (and raid6's Q) chunks.
func (g mdGeometry) parityDisks(row int) (p, q int) {
	p = g.n - 1 - row%g.n
	return p, (p + 1) % g.n
}

// places are the (member, byte offset in its data area) of chunk k's
// copies: one for raid0 and raid5, two for raid10 near=2.
func (g mdGeometry) places(k int) [][2]int {
	switch g.level {
	case "raid10":
		out := make([][2]int, 2)
		for c := range out {
			pos := 2*k + c
			out[c] = [2]int{pos % g.n, pos / g.n * g.chunk}
		}
		return out
	case "raid5":
		row, i := k/(g.n-1), k%(g.n-1)
		parity, _ := g.parityDisks(row)
		return [][2]int{{(parity + 1 + i) % g.n, row * g.chunk}}
	case "raid6":
		// Data follows Q; data chunk i of a row is the syndrome's i-th.
		row, i := k/(g.n-2), k%(g.n-2)
		_, q := g.parityDisks(row)
		return [][2]int{{(q + 1 + i) % g.n, row * g.chunk}}
	}
	return [][2]int{{k % g.n, k / g.n * g.chunk}}
}

// MDArrayBytes is the size of the data an array of members data areas of
// memberBytes each holds.
func MDArrayBytes(level string, layout uint32, members, chunkBytes, memberBytes int) (int, error) {
	g, err := newMDGeometry(level, layout, members, chunkBytes)
	if err != nil {
		return 0, err
	}
	return g.dataChunks(memberBytes) * g.chunk, nil
}

// StripeMD returns the members' data areas (memberBytes each) holding
// data, the whole array's content, with raid5's parity computed.
func StripeMD(level string, layout uint32, members, chunkBytes, memberBytes int, data []byte) ([][]byte, error) {
	g, err := newMDGeometry(level, layout, members, chunkBytes)
	if err != nil {
		return nil, err
	}
	if len(data) != g.dataChunks(memberBytes)*g.chunk {
		return nil, fmt.Errorf("%d bytes of data for an array of %d", len(data), g.dataChunks(memberBytes)*g.chunk)
	}
	out := make([][]byte, members)
	for i := range out {
		out[i] = make([]byte, memberBytes)
	}
	for k := 0; k*g.chunk < len(data); k++ {
		for _, p := range g.places(k) {
			copy(out[p[0]][p[1]:p[1]+g.chunk], data[k*g.chunk:])
		}
	}
	if level == "raid5" || level == "raid6" {
		for row := 0; (row+1)*g.chunk <= memberBytes; row++ {
			p, q := g.syndromes(out, row)
			pd, qd := g.parityDisks(row)
			copy(out[pd][row*g.chunk:], p)
			if level == "raid6" {
				copy(out[qd][row*g.chunk:], q)
			}
		}
	}
	return out, nil
}

// syndromes are row's P (the XOR of its data chunks) and raid6's Q (the
// sum of g^i times data chunk i, in GF(2^8)), from the data chunks in
// members.
func (g mdGeometry) syndromes(members [][]byte, row int) (p, q []byte) {
	p, q = make([]byte, g.chunk), make([]byte, g.chunk)
	data := g.n - 1
	if g.level == "raid6" {
		data = g.n - 2
	}
	for i := 0; i < data; i++ {
		place := g.places(row*data + i)[0]
		d := members[place[0]][place[1] : place[1]+g.chunk]
		coef := gfPow2(i)
		for j, b := range d {
			p[j] ^= b
			q[j] ^= gfMul(coef, b)
		}
	}
	return p, q
}

// gfMul multiplies in GF(2^8) with the polynomial x^8+x^4+x^3+x^2+1.
func gfMul(a, b byte) byte {
	var r byte
	for b != 0 {
		if b&1 != 0 {
			r ^= a
		}
		hi := a & 0x80
		a <<= 1
		if hi != 0 {
			a ^= 0x1d
		}
		b >>= 1
	}
	return r
}

func gfPow2(i int) byte {
	r := byte(1)
	for ; i > 0; i-- {
		r = gfMul(r, 2)
	}
	return r
}

// UnstripeMD is the array's content read from its members' data areas
// (the first copy of each raid10 chunk).
func UnstripeMD(level string, layout uint32, chunkBytes int, members [][]byte) ([]byte, error) {
	g, err := newMDGeometry(level, layout, len(members), chunkBytes)
	if err != nil {
		return nil, err
	}
	size := len(members[0])
	for _, m := range members {
		if len(m) != size {
			return nil, fmt.Errorf("members of %d and %d bytes", size, len(m))
		}
	}
	data := make([]byte, g.dataChunks(size)*g.chunk)
	for k := 0; k*g.chunk < len(data); k++ {
		p := g.places(k)[0]
		copy(data[k*g.chunk:(k+1)*g.chunk], members[p[0]][p[1]:])
	}
	return data, nil
}

// CheckMDRedundancy checks that every raid10 chunk's two copies are equal
// and that every raid5 and raid6 row's P (and Q) chunks are its data's.
func CheckMDRedundancy(level string, layout uint32, chunkBytes int, members [][]byte) error {
	g, err := newMDGeometry(level, layout, len(members), chunkBytes)
	if err != nil {
		return err
	}
	size := len(members[0])
	switch level {
	case "raid10":
		for k := 0; k < g.dataChunks(size); k++ {
			p := g.places(k)
			a, b := members[p[0][0]][p[0][1]:p[0][1]+g.chunk], members[p[1][0]][p[1][1]:p[1][1]+g.chunk]
			if !bytes.Equal(a, b) {
				return fmt.Errorf("raid10 chunk %d: the copies on members %d and %d differ", k, p[0][0], p[1][0])
			}
		}
	case "raid5", "raid6":
		for row := 0; (row+1)*g.chunk <= size; row++ {
			p, q := g.syndromes(members, row)
			pd, qd := g.parityDisks(row)
			if !bytes.Equal(p, members[pd][row*g.chunk:(row+1)*g.chunk]) {
				return fmt.Errorf("%s row %d: P (member %d) does not match the data", level, row, pd)
			}
			if level == "raid6" && !bytes.Equal(q, members[qd][row*g.chunk:(row+1)*g.chunk]) {
				return fmt.Errorf("raid6 row %d: Q (member %d) does not match the data", row, qd)
			}
		}
	}
	return nil
}
