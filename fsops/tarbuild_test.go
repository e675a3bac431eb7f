package fsops

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// tentry is one entry of a test archive. Names, link targets and PAX values
// may contain outPH, replaced by an absolute directory outside dest.
type tentry struct {
	typ      byte
	name     string
	link     string
	mode     int64
	body     string
	devmajor int64
	devminor int64
	// pax, when set, is written as a hand-made 'x' header before the entry
	// (tar.Writer refuses or drops some hostile records, e.g. NUL or sparse).
	pax []string // key, value, key, value...
	// oldSparse rewrites a GNU-format regular entry into type 'S'.
	oldSparse bool
	gnu       bool // write in GNU format (long names become 'L' entries)
}

const outPH = "@OUT@"

func reg(name, body string) tentry {
	return tentry{typ: tar.TypeReg, name: name, body: body, mode: 0o644}
}
func regMode(name, body string, mode int64) tentry {
	return tentry{typ: tar.TypeReg, name: name, body: body, mode: mode}
}
func dir(name string) tentry                 { return tentry{typ: tar.TypeDir, name: name, mode: 0o755} }
func dirMode(name string, mode int64) tentry { return tentry{typ: tar.TypeDir, name: name, mode: mode} }
func sym(name, target string) tentry {
	return tentry{typ: tar.TypeSymlink, name: name, link: target, mode: 0o777}
}
func hard(name, target string) tentry {
	return tentry{typ: tar.TypeLink, name: name, link: target, mode: 0o644}
}
func dev(typ byte, name string, major, minor int64) tentry {
	return tentry{typ: typ, name: name, mode: 0o666, devmajor: major, devminor: minor}
}

// paxRecord formats one PAX record: "%d %s=%s\n", the length counting itself.
func paxRecord(k, v string) string {
	s := " " + k + "=" + v + "\n"
	for d := 1; ; d++ {
		if n := len(s) + d; len(strconv.Itoa(n)) == d {
			return strconv.Itoa(n) + s
		}
	}
}

// retype changes the typeflag of the header block at off and fixes its checksum.
func retype(b []byte, off int, typ byte) {
	blk := b[off : off+512]
	blk[156] = typ
	copy(blk[148:156], "        ")
	sum := 0
	for _, c := range blk {
		sum += int(c)
	}
	copy(blk[148:156], fmt.Sprintf("%06o\x00 ", sum))
}

// buildTar writes ents as a tar stream; out replaces outPH.
func buildTar(tb testing.TB, out string, ents []tentry) []byte {
	tb.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	sub := func(s string) string { return strings.ReplaceAll(s, outPH, out) }
	for _, e := range ents {
		format := tar.FormatPAX
		if e.gnu || e.oldSparse {
			format = tar.FormatGNU
		}
		if e.pax != nil {
			var recs strings.Builder
			for i := 0; i+1 < len(e.pax); i += 2 {
				recs.WriteString(paxRecord(e.pax[i], sub(e.pax[i+1])))
			}
			off := buf.Len()
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "PaxHeaders/x", Size: int64(recs.Len()), Format: tar.FormatUSTAR}); err != nil {
				tb.Fatal(err)
			}
			if _, err := tw.Write([]byte(recs.String())); err != nil {
				tb.Fatal(err)
			}
			if err := tw.Flush(); err != nil {
				tb.Fatal(err)
			}
			retype(buf.Bytes(), off, tar.TypeXHeader)
			format = tar.FormatUSTAR
		}
		h := &tar.Header{
			Typeflag: e.typ,
			Name:     sub(e.name),
			Linkname: sub(e.link),
			Mode:     e.mode,
			Devmajor: e.devmajor,
			Devminor: e.devminor,
			Format:   format,
		}
		if e.typ == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		off := buf.Len()
		if err := tw.WriteHeader(h); err != nil {
			tb.Fatalf("WriteHeader(%q): %v", h.Name, err)
		}
		if e.body != "" {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				tb.Fatal(err)
			}
		}
		if err := tw.Flush(); err != nil {
			tb.Fatal(err)
		}
		if e.oldSparse {
			retype(buf.Bytes(), off, tar.TypeGNUSparse)
		}
	}
	if err := tw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// fileState is what we remember of a path outside dest.
type fileState struct {
	mode         fs.FileMode
	size         int64
	nlink        uint64
	uid, gid     uint32
	mtime, ctime syscall.Timespec
	link         string
	sum          [32]byte
}

// snapshotOutside records everything under parent except dest's contents.
func snapshotOutside(tb testing.TB, parent, dest string) map[string]fileState {
	tb.Helper()
	snap := map[string]fileState{}
	err := filepath.WalkDir(parent, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dest {
			return filepath.SkipDir // dest's own times legitimately change
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		s := fileState{mode: fi.Mode(), size: fi.Size(), nlink: uint64(st.Nlink), uid: st.Uid, gid: st.Gid, mtime: st.Mtim, ctime: st.Ctim}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			s.link, err = os.Readlink(p)
		case fi.Mode().IsRegular():
			var b []byte
			b, err = os.ReadFile(p)
			s.sum = sha256.Sum256(b)
		}
		snap[p] = s
		return err
	})
	if err != nil {
		tb.Fatalf("snapshot of %s: %v", parent, err)
	}
	return snap
}

// compareOutside fails if anything outside dest was created, removed or
// touched. With unlinked, a file may lose links (a hard link to it inside
// dest was replaced), which also updates its ctime.
func compareOutside(tb testing.TB, before, after map[string]fileState, unlinked bool) {
	tb.Helper()
	for p, a := range after {
		b, ok := before[p]
		if ok && unlinked && a.nlink < b.nlink {
			a.nlink, a.ctime = b.nlink, b.ctime
		}
		switch {
		case !ok:
			tb.Errorf("created outside dest: %s (%v)", p, a.mode)
		case a != b:
			tb.Errorf("modified outside dest: %s\nbefore %+v\nafter  %+v", p, b, a)
		}
	}
	for p := range before {
		if _, ok := after[p]; !ok {
			tb.Errorf("removed outside dest: %s", p)
		}
	}
}

// checkDestSane fails on anything in dest that ExtractTar must never create:
// special files or setuid/setgid/sticky modes. It walks through os.Root so
// paths longer than PATH_MAX are fine.
func checkDestSane(tb testing.TB, dest string) {
	tb.Helper()
	root, err := os.OpenRoot(dest)
	if err != nil {
		tb.Fatal(err)
	}
	defer root.Close()
	err = fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		m := fi.Mode()
		if m&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0 {
			tb.Errorf("%s has mode %v", p, m)
		}
		if m&(fs.ModeDevice|fs.ModeCharDevice|fs.ModeNamedPipe|fs.ModeSocket|fs.ModeIrregular) != 0 {
			tb.Errorf("%s is a special file (%v)", p, m)
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("walking %s: %v", dest, err)
	}
}
