package agent

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sort"
	"strconv"
	"strings"
)

// Reading LVM2 physical volume labels and the volume group text metadata,
// so the agent can activate logical volumes itself (lvm.go) instead of
// carrying lvm and its libraries (12 MB) in the main initramfs. The on-disk
// format is LVM2's "lvm2" format: a label in one of the first four sectors,
// a PV header listing the metadata areas, and in each metadata area a
// circular buffer holding the VG description as text.

const (
	lvmSector      = 512
	lvmLabelID     = "LABELONE"
	lvmLabelType   = "LVM2 001"
	lvmMDAMagic    = " LVM2 x[5A%r0N*>"
	lvmMDAHeader   = 512 // the metadata area header; the buffer follows it
	lvmInitialCRC  = 0xf597a6cf
	lvmRawIgnored  = 1        // raw_locn flag: this copy of the metadata is ignored
	lvmMaxMetadata = 16 << 20 // sanity bound on one metadata text
)

var errNoPVLabel = errors.New("no LVM2 label")

// lvmCRC is LVM's checksum: CRC-32 (IEEE, reflected) started at
// lvmInitialCRC and without the final inversion.
func lvmCRC(p []byte) uint32 {
	return ^crc32.Update(^uint32(lvmInitialCRC), crc32.IEEETable, p)
}

// lvmArea is an (offset, size) pair in bytes from the start of the PV.
type lvmArea struct{ offset, size uint64 }

// pvLabel is what the label and PV header of a physical volume say.
type pvLabel struct {
	uuid string // 32 characters, without the dashes the metadata text uses
	size uint64 // bytes
	mdas []lvmArea
}

// readPVLabel finds the LVM2 label in the first four sectors of r.
func readPVLabel(r io.ReaderAt) (*pvLabel, error) {
	buf := make([]byte, 4*lvmSector)
	if n, err := r.ReadAt(buf, 0); n < len(buf) {
		return nil, fmt.Errorf("reading the LVM label: %w", err)
	}
	le := binary.LittleEndian
	for s := 0; s < 4; s++ {
		l := buf[s*lvmSector : (s+1)*lvmSector]
		if string(l[0:8]) != lvmLabelID || string(l[24:32]) != lvmLabelType {
			continue
		}
		if le.Uint64(l[8:16]) != uint64(s) {
			continue // a label copied to the wrong sector
		}
		if got, want := lvmCRC(l[20:]), le.Uint32(l[16:20]); got != want {
			return nil, fmt.Errorf("LVM label in sector %d: bad checksum %08x (want %08x)", s, got, want)
		}
		off := int(le.Uint32(l[20:24]))
		if off < 32 || off+40 > lvmSector {
			return nil, fmt.Errorf("LVM label in sector %d: PV header offset %d out of range", s, off)
		}
		h := l[off:]
		lb := &pvLabel{uuid: string(h[0:32]), size: le.Uint64(h[32:40])}
		rest := h[40:]
		// Two lists of areas, each ended by a zero entry: data areas, then
		// metadata areas.
		for list := 0; list < 2; list++ {
			for {
				if len(rest) < 16 {
					return nil, errors.New("LVM PV header: area list runs past the label sector")
				}
				a := lvmArea{le.Uint64(rest[0:8]), le.Uint64(rest[8:16])}
				rest = rest[16:]
				if a.offset == 0 && a.size == 0 {
					break
				}
				if list == 1 {
					lb.mdas = append(lb.mdas, a)
				}
			}
		}
		return lb, nil
	}
	return nil, errNoPVLabel
}

// readMetadataArea returns the current VG metadata text of one metadata
// area, or nil when the area holds none (a PV in no VG, or a copy marked
// ignored).
func readMetadataArea(r io.ReaderAt, mda lvmArea) ([]byte, error) {
	hdr := make([]byte, lvmMDAHeader)
	if _, err := r.ReadAt(hdr, int64(mda.offset)); err != nil {
		return nil, fmt.Errorf("reading the metadata area header at %d: %w", mda.offset, err)
	}
	le := binary.LittleEndian
	if string(hdr[4:20]) != lvmMDAMagic {
		return nil, fmt.Errorf("metadata area at %d: bad magic", mda.offset)
	}
	if got, want := lvmCRC(hdr[4:]), le.Uint32(hdr[0:4]); got != want {
		return nil, fmt.Errorf("metadata area at %d: bad header checksum", mda.offset)
	}
	size := le.Uint64(hdr[32:40])
	rl := hdr[40:64] // the first raw location: the committed metadata
	off, n, sum, flags := le.Uint64(rl[0:8]), le.Uint64(rl[8:16]), le.Uint32(rl[16:20]), le.Uint32(rl[20:24])
	if off == 0 || n == 0 || flags&lvmRawIgnored != 0 {
		return nil, nil
	}
	if n > lvmMaxMetadata || off < lvmMDAHeader || off >= size || n > size-lvmMDAHeader {
		return nil, fmt.Errorf("metadata area at %d: location %d+%d out of range (area size %d)", mda.offset, off, n, size)
	}
	text := make([]byte, n)
	first := n
	if off+n > size { // the text wraps around the end of the circular buffer
		first = size - off
	}
	if _, err := r.ReadAt(text[:first], int64(mda.offset+off)); err != nil {
		return nil, fmt.Errorf("reading metadata at %d: %w", mda.offset+off, err)
	}
	if first < n {
		if _, err := r.ReadAt(text[first:], int64(mda.offset+lvmMDAHeader)); err != nil {
			return nil, fmt.Errorf("reading wrapped metadata at %d: %w", mda.offset+lvmMDAHeader, err)
		}
	}
	if lvmCRC(text) != sum {
		return nil, fmt.Errorf("metadata area at %d: metadata checksum mismatch", mda.offset)
	}
	if i := strings.IndexByte(string(text), 0); i >= 0 {
		text = text[:i]
	}
	return text, nil
}

// lvmSection is a section of LVM's text format: ordered keys, each a value
// (int64, float64, string, []any) or a nested *lvmSection.
type lvmSection struct {
	keys []string
	vals map[string]any
}

func (s *lvmSection) section(k string) *lvmSection {
	v, _ := s.vals[k].(*lvmSection)
	return v
}

func (s *lvmSection) str(k string) string {
	v, _ := s.vals[k].(string)
	return v
}

func (s *lvmSection) num(k string) (int64, bool) {
	v, ok := s.vals[k].(int64)
	return v, ok
}

func (s *lvmSection) strings(k string) []string {
	arr, _ := s.vals[k].([]any)
	var out []string
	for _, v := range arr {
		if str, ok := v.(string); ok {
			out = append(out, str)
		}
	}
	return out
}

// parseLVMText parses LVM's configuration syntax: `key = value`, `name {
// ... }`, values are integers, floats, "strings" and [lists], # comments.
func parseLVMText(data []byte) (*lvmSection, error) {
	p := &lvmParser{s: data}
	sec, err := p.body(0)
	if err != nil {
		return nil, err
	}
	if p.i < len(p.s) {
		return nil, p.errorf("unexpected '%c'", p.s[p.i])
	}
	return sec, nil
}

type lvmParser struct {
	s []byte
	i int
}

func (p *lvmParser) errorf(format string, args ...any) error {
	line := 1 + strings.Count(string(p.s[:p.i]), "\n")
	return fmt.Errorf("LVM metadata line %d: %s", line, fmt.Sprintf(format, args...))
}

// skip passes blanks and comments.
func (p *lvmParser) skip() {
	for p.i < len(p.s) {
		switch c := p.s[p.i]; {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			p.i++
		case c == '#':
			for p.i < len(p.s) && p.s[p.i] != '\n' {
				p.i++
			}
		default:
			return
		}
	}
}

func isLVMNameChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '_' || c == '.' || c == '+' || c == '-'
}

func (p *lvmParser) body(depth int) (*lvmSection, error) {
	if depth > 32 {
		return nil, p.errorf("sections nest too deeply")
	}
	sec := &lvmSection{vals: map[string]any{}}
	for {
		p.skip()
		if p.i >= len(p.s) || p.s[p.i] == '}' {
			return sec, nil
		}
		start := p.i
		for p.i < len(p.s) && isLVMNameChar(p.s[p.i]) {
			p.i++
		}
		if p.i == start {
			return nil, p.errorf("expected a name, found '%c'", p.s[p.i])
		}
		key := string(p.s[start:p.i])
		p.skip()
		if p.i >= len(p.s) {
			return nil, p.errorf("unexpected end after %q", key)
		}
		var v any
		switch p.s[p.i] {
		case '{':
			p.i++
			sub, err := p.body(depth + 1)
			if err != nil {
				return nil, err
			}
			if p.i >= len(p.s) {
				return nil, p.errorf("section %q is not closed", key)
			}
			p.i++ // '}'
			v = sub
		case '=':
			p.i++
			var err error
			if v, err = p.value(true); err != nil {
				return nil, err
			}
		default:
			return nil, p.errorf("expected '=' or '{' after %q", key)
		}
		if _, dup := sec.vals[key]; !dup {
			sec.keys = append(sec.keys, key)
		}
		sec.vals[key] = v
	}
}

func (p *lvmParser) value(listOK bool) (any, error) {
	p.skip()
	if p.i >= len(p.s) {
		return nil, p.errorf("missing value")
	}
	switch c := p.s[p.i]; {
	case c == '"':
		p.i++
		var b strings.Builder
		for p.i < len(p.s) && p.s[p.i] != '"' {
			if p.s[p.i] == '\\' && p.i+1 < len(p.s) {
				p.i++
			}
			b.WriteByte(p.s[p.i])
			p.i++
		}
		if p.i >= len(p.s) {
			return nil, p.errorf("string is not closed")
		}
		p.i++
		return b.String(), nil
	case c == '[' && listOK:
		p.i++
		list := []any{}
		for {
			p.skip()
			if p.i < len(p.s) && p.s[p.i] == ']' {
				p.i++
				return list, nil
			}
			v, err := p.value(false)
			if err != nil {
				return nil, err
			}
			list = append(list, v)
			p.skip()
			if p.i < len(p.s) && p.s[p.i] == ',' {
				p.i++
			}
		}
	default:
		start := p.i
		for p.i < len(p.s) && (p.s[p.i] == '-' || p.s[p.i] == '+' || p.s[p.i] == '.' ||
			p.s[p.i] >= '0' && p.s[p.i] <= '9' || p.s[p.i] == 'e' || p.s[p.i] == 'E') {
			p.i++
		}
		tok := string(p.s[start:p.i])
		if n, err := strconv.ParseInt(tok, 10, 64); err == nil {
			return n, nil
		}
		if f, err := strconv.ParseFloat(tok, 64); err == nil {
			return f, nil
		}
		return nil, p.errorf("bad value %q", tok)
	}
}

// lvmVG is a volume group as its metadata describes it.
type lvmVG struct {
	name, id   string
	seqno      int64
	extentSize uint64 // sectors
	writable   bool
	pvs        map[string]*lvmPV // by the metadata's name (pv0, pv1...)
	pvNames    []string          // metadata order
	lvs        []*lvmLV          // metadata order
}

type lvmPV struct {
	id               string // with dashes, as in the text
	peStart, peCount uint64 // sectors, extents
}

type lvmLV struct {
	name, id string
	status   []string
	segs     []lvmSeg
}

type lvmSeg struct {
	start, count uint64 // in extents, within the LV
	typ          string // "striped" (linear is striped with one stripe), "thin", ...
	stripeSize   uint64 // sectors
	stripes      []lvmStripe
	origin       string // snapshot segments: the LV they are a snapshot of
}

type lvmStripe struct {
	pv    string // metadata name
	start uint64 // extent on that PV
}

func hasFlag(list []string, f string) bool {
	for _, x := range list {
		if x == f {
			return true
		}
	}
	return false
}

// parseVG turns parsed metadata into a lvmVG: the one top-level section
// that is a volume group.
func parseVG(root *lvmSection) (*lvmVG, error) {
	for _, name := range root.keys {
		sec := root.section(name)
		if sec == nil || sec.section("physical_volumes") == nil {
			continue
		}
		vg := &lvmVG{name: name, id: sec.str("id"), pvs: map[string]*lvmPV{}}
		vg.seqno, _ = sec.num("seqno")
		es, ok := sec.num("extent_size")
		if !ok || es <= 0 {
			return nil, fmt.Errorf("VG %s: no extent_size", name)
		}
		vg.extentSize = uint64(es)
		vg.writable = hasFlag(sec.strings("status"), "WRITE")
		pvs := sec.section("physical_volumes")
		for _, pn := range pvs.keys {
			ps := pvs.section(pn)
			if ps == nil {
				continue
			}
			start, _ := ps.num("pe_start")
			count, _ := ps.num("pe_count")
			if start < 0 || count < 0 {
				return nil, fmt.Errorf("VG %s: PV %s: negative pe_start or pe_count", name, pn)
			}
			vg.pvs[pn] = &lvmPV{id: ps.str("id"), peStart: uint64(start), peCount: uint64(count)}
			vg.pvNames = append(vg.pvNames, pn)
		}
		if lvs := sec.section("logical_volumes"); lvs != nil {
			for _, ln := range lvs.keys {
				ls := lvs.section(ln)
				if ls == nil {
					continue
				}
				lv, err := parseLV(ln, ls)
				if err != nil {
					return nil, fmt.Errorf("VG %s: %w", name, err)
				}
				vg.lvs = append(vg.lvs, lv)
			}
		}
		return vg, nil
	}
	return nil, errors.New("no volume group in the metadata")
}

func parseLV(name string, ls *lvmSection) (*lvmLV, error) {
	lv := &lvmLV{name: name, id: ls.str("id"), status: ls.strings("status")}
	for _, k := range ls.keys {
		ss := ls.section(k)
		if ss == nil || !strings.HasPrefix(k, "segment") {
			continue
		}
		start, ok1 := ss.num("start_extent")
		count, ok2 := ss.num("extent_count")
		if !ok1 || !ok2 || start < 0 || count <= 0 {
			return nil, fmt.Errorf("LV %s %s: bad start_extent or extent_count", name, k)
		}
		seg := lvmSeg{start: uint64(start), count: uint64(count), typ: ss.str("type"), origin: ss.str("origin")}
		if sz, ok := ss.num("stripe_size"); ok && sz > 0 {
			seg.stripeSize = uint64(sz)
		}
		if arr, ok := ss.vals["stripes"].([]any); ok {
			if len(arr)%2 != 0 {
				return nil, fmt.Errorf("LV %s %s: odd stripes list", name, k)
			}
			for i := 0; i < len(arr); i += 2 {
				pv, ok1 := arr[i].(string)
				ext, ok2 := arr[i+1].(int64)
				if !ok1 || !ok2 || ext < 0 {
					return nil, fmt.Errorf("LV %s %s: bad stripes entry", name, k)
				}
				seg.stripes = append(seg.stripes, lvmStripe{pv: pv, start: uint64(ext)})
			}
		}
		lv.segs = append(lv.segs, seg)
	}
	sort.Slice(lv.segs, func(i, j int) bool { return lv.segs[i].start < lv.segs[j].start })
	return lv, nil
}

// extents is the LV's length in extents.
func (lv *lvmLV) extents() uint64 {
	var n uint64
	for _, s := range lv.segs {
		n += s.count
	}
	return n
}

// segType names the LV's kind the way lvs does: linear, striped, or the
// first segment's type.
func (lv *lvmLV) segType() string {
	t := ""
	for _, s := range lv.segs {
		st := s.typ
		if st == "striped" && len(s.stripes) == 1 {
			st = "linear"
		}
		switch {
		case t == "":
			t = st
		case t != st && (t == "linear" || t == "striped") && (st == "linear" || st == "striped"):
			t = "striped"
		case t != st:
			return t + "+" + st
		}
	}
	return t
}

// dmTarget is one line of a device-mapper table.
type dmTarget struct {
	start, length uint64 // sectors
	typ, params   string
}

// errUnsupportedLV means an LV needs a device-mapper target the agent does
// not build (thin, raid, cache, mirror, snapshot, vdo...).
type errUnsupportedLV struct{ typ string }

func (e errUnsupportedLV) Error() string {
	return "segment type " + e.typ + " is not supported (imgbake activates linear and striped volumes)"
}

// table builds the device-mapper table of lv. dev maps a PV's metadata
// name to the "major:minor" of its device.
func (vg *lvmVG) table(lv *lvmLV, dev func(pv string) (string, bool)) ([]dmTarget, error) {
	if len(lv.segs) == 0 {
		return nil, errors.New("no segments")
	}
	var out []dmTarget
	var next uint64
	for _, s := range lv.segs {
		if s.start != next {
			return nil, fmt.Errorf("segments leave a gap at extent %d", next)
		}
		next = s.start + s.count
		t := dmTarget{start: s.start * vg.extentSize, length: s.count * vg.extentSize}
		switch s.typ {
		case "striped":
			n := uint64(len(s.stripes))
			if n == 0 || s.count%n != 0 {
				return nil, fmt.Errorf("striped segment with %d stripes over %d extents", n, s.count)
			}
			var devs []string
			for _, st := range s.stripes {
				pv, ok := vg.pvs[st.pv]
				if !ok {
					return nil, fmt.Errorf("segment uses unknown PV %s", st.pv)
				}
				if st.start+s.count/n > pv.peCount {
					return nil, fmt.Errorf("segment runs past the end of PV %s", st.pv)
				}
				d, ok := dev(st.pv)
				if !ok {
					return nil, fmt.Errorf("PV %s (%s) is missing", st.pv, pv.id)
				}
				devs = append(devs, fmt.Sprintf("%s %d", d, pv.peStart+st.start*vg.extentSize))
			}
			if n == 1 {
				t.typ, t.params = "linear", devs[0]
			} else {
				if s.stripeSize == 0 {
					return nil, errors.New("striped segment without stripe_size")
				}
				t.typ, t.params = "striped", fmt.Sprintf("%d %d %s", n, s.stripeSize, strings.Join(devs, " "))
			}
		case "zero", "error":
			t.typ = s.typ
		default:
			return nil, errUnsupportedLV{s.typ}
		}
		out = append(out, t)
	}
	return out, nil
}

// dmUUID is LVM's device-mapper UUID of an LV, so lvm tools run later in
// the appliance recognize the device as theirs.
func dmUUID(vgID, lvID string) string {
	return "LVM-" + strings.ReplaceAll(vgID, "-", "") + strings.ReplaceAll(lvID, "-", "")
}
