// Command protogen writes an xfsprogs protofile (the input of `mkfs.xfs -p`)
// that reproduces a directory tree, so an xfs filesystem can be populated
// without mounting it (no loop devices needed).
//
// Usage:
//
//	protogen [-fixups FILE] ROOT > PROTOFILE
//
// Supported: regular files, directories, symlinks, character and block
// devices, FIFOs, setuid/setgid bits; hard links become independent copies.
// Not representable in the xfsprogs 6.1 protofile syntax, reported on stderr:
// sockets, and names containing whitespace, starting with ':' or equal to "$"
// (skipped); extended attributes (dropped). The sticky bit cannot be written
// either, and mkfs.xfs makes children of setgid directories inherit the
// directory's group: for these the exact "PATH<TAB>MODE<TAB>UID<TAB>GID" (mode
// in octal, with the file type bits) is written to the -fixups file, to be
// applied afterwards with xfs_db (path PATH; write core.mode/uid/gid).
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

func main() {
	fixupsPath := flag.String("fixups", "", "write mode/owner fixups for xfs_db to this file")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: protogen [-fixups FILE] ROOT > PROTOFILE\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	root, err := filepath.Abs(flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, "protogen:", err)
		os.Exit(1)
	}
	out := bufio.NewWriter(os.Stdout)
	var fix io.Writer = io.Discard
	var fixFile *os.File
	if *fixupsPath != "" {
		fixFile, err = os.Create(*fixupsPath)
		if err != nil {
			fmt.Fprintln(os.Stderr, "protogen:", err)
			os.Exit(1)
		}
		fix = fixFile
	}
	res, err := Generate(root, out, fix)
	if err == nil {
		err = out.Flush()
	}
	if fixFile != nil {
		if cerr := fixFile.Close(); err == nil {
			err = cerr
		}
	}
	for _, s := range res.Skipped {
		fmt.Fprintln(os.Stderr, "protogen: skipped:", s)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "protogen:", err)
		os.Exit(1)
	}
}

// Result reports what Generate could not represent.
type Result struct {
	Skipped []string // paths (relative to the root, with a reason) left out
	Fixups  int      // number of fixup lines written
}

// Generate writes the protofile for the tree at root (an absolute path without
// whitespace) to w, and fixup lines to fix.
func Generate(root string, w io.Writer, fix io.Writer) (Result, error) {
	var res Result
	if strings.ContainsAny(root, " \t\n") {
		return res, fmt.Errorf("root path %q contains whitespace, which the protofile cannot express", root)
	}
	fi, err := os.Lstat(root)
	if err != nil {
		return res, err
	}
	if !fi.IsDir() {
		return res, fmt.Errorf("%s is not a directory", root)
	}
	g := &gen{root: root, w: w, fix: fix, res: &res}
	// Line 1: ignored name; line 2: two ignored numbers.
	fmt.Fprintf(w, "imgbake-protogen\n0 0\n")
	st := fi.Sys().(*syscall.Stat_t)
	fmt.Fprintf(w, "%s %d %d\n", modeString('d', st.Mode), st.Uid, st.Gid)
	if err := g.dir("", st, 1); err != nil {
		return res, err
	}
	fmt.Fprintf(w, "$\n")
	return res, g.err
}

type gen struct {
	root string
	w    io.Writer
	fix  io.Writer
	res  *Result
	err  error
}

// dir writes the entries of the directory rel (relative to root, "" = root),
// whose stat is dst, at indentation depth.
func (g *gen) dir(rel string, dst *syscall.Stat_t, depth int) error {
	abs := filepath.Join(g.root, rel)
	f, err := os.Open(abs)
	if err != nil {
		return err
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return err
	}
	sort.Strings(names)
	ind := strings.Repeat(" ", depth)
	for _, name := range names {
		crel := "/" + name
		if rel != "" {
			crel = rel + "/" + name
		}
		if strings.ContainsAny(name, " \t\n\r\v\f") || strings.HasPrefix(name, ":") || name == "$" {
			g.res.Skipped = append(g.res.Skipped, crel+": name not representable in a protofile")
			continue
		}
		cabs := filepath.Join(g.root, crel)
		fi, err := os.Lstat(cabs)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		var typ byte
		switch st.Mode & syscall.S_IFMT {
		case syscall.S_IFREG:
			typ = '-'
		case syscall.S_IFDIR:
			typ = 'd'
		case syscall.S_IFLNK:
			typ = 'l'
		case syscall.S_IFCHR:
			typ = 'c'
		case syscall.S_IFBLK:
			typ = 'b'
		case syscall.S_IFIFO:
			typ = 'p'
		default:
			g.res.Skipped = append(g.res.Skipped, crel+": unsupported file type (socket?)")
			continue
		}
		head := fmt.Sprintf("%s%s %s %d %d", ind, name, modeString(typ, st.Mode), st.Uid, st.Gid)
		switch typ {
		case '-':
			fmt.Fprintf(g.w, "%s %s\n", head, cabs)
		case 'l':
			target, err := os.Readlink(cabs)
			if err != nil {
				return err
			}
			if target == "" || strings.ContainsAny(target, " \t\n\r\v\f") || strings.HasPrefix(target, ":") {
				g.res.Skipped = append(g.res.Skipped, crel+": symlink target not representable in a protofile")
				continue
			}
			fmt.Fprintf(g.w, "%s %s\n", head, target)
		case 'c', 'b':
			fmt.Fprintf(g.w, "%s %d %d\n", head, major(st.Rdev), minor(st.Rdev))
		case 'p':
			fmt.Fprintf(g.w, "%s\n", head)
		case 'd':
			fmt.Fprintf(g.w, "%s\n", head)
		}
		// Sticky bit (not expressible) or a setgid parent (mkfs.xfs forces the
		// parent's group, and the setgid bit on subdirectories): fix up later.
		if st.Mode&syscall.S_ISVTX != 0 || dst.Mode&syscall.S_ISGID != 0 {
			g.res.Fixups++
			if _, err := fmt.Fprintf(g.fix, "%s\t%o\t%d\t%d\n", crel, st.Mode, st.Uid, st.Gid); err != nil {
				return err
			}
		}
		if typ == 'd' {
			if err := g.dir(crel, st, depth+1); err != nil {
				return err
			}
			fmt.Fprintf(g.w, "%s$\n", ind)
		}
	}
	return nil
}

// modeString is the protofile's 6-character mode: type, 'u' or '-', 'g' or
// '-', then the three octal permission digits.
func modeString(typ byte, mode uint32) string {
	u, gb := byte('-'), byte('-')
	if mode&syscall.S_ISUID != 0 {
		u = 'u'
	}
	if mode&syscall.S_ISGID != 0 {
		gb = 'g'
	}
	return fmt.Sprintf("%c%c%c%03o", typ, u, gb, mode&0777)
}

func major(dev uint64) uint64 { return ((dev >> 8) & 0xfff) | ((dev >> 32) & 0xfffff000) }
func minor(dev uint64) uint64 { return (dev & 0xff) | ((dev >> 12) & 0xffffff00) }
