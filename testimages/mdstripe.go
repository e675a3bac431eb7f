package testimages

import (
	"bytes"
	"fmt"
)

// The data layouts of md's raid0, raid10 (near=2) and raid5
// (left-symmetric), as the kernel reads them (drivers/md/raid0.c,
// raid10.c, raid5.c raid5_compute_sector): StripeMD lays an array's data
// out on its members' data areas, UnstripeMD reads it back from them, and
// CheckMDRedundancy checks the copies or the parity. The kernel in the
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
		level == "raid5" && layout == MDLeftSymmetric && members >= 3:
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
	}
	return rows * g.n
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
		parity := g.n - 1 - row%g.n
		return [][2]int{{(parity + 1 + i) % g.n, row * g.chunk}}
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
	if level == "raid5" {
		for row := 0; (row+1)*g.chunk <= memberBytes; row++ {
			parity := out[g.n-1-row%g.n][row*g.chunk : (row+1)*g.chunk]
			for m := range out {
				if p := out[m][row*g.chunk : (row+1)*g.chunk]; &p[0] != &parity[0] {
					for i := range parity {
						parity[i] ^= p[i]
					}
				}
			}
		}
	}
	return out, nil
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
// and that every raid5 row's chunks XOR to zero.
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
	case "raid5":
		for row := 0; (row+1)*g.chunk <= size; row++ {
			x := make([]byte, g.chunk)
			for _, m := range members {
				for i, b := range m[row*g.chunk : (row+1)*g.chunk] {
					x[i] ^= b
				}
			}
			if !bytes.Equal(x, make([]byte, g.chunk)) {
				return fmt.Errorf("raid5 row %d: the parity does not match the data", row)
			}
		}
	}
	return nil
}
