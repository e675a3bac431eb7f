package fsops

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
)

// TestMain shortens the fuzzer's minimization of new inputs from its 60s
// default unless -fuzzminimizetime is given: tar inputs are at least 1.5 KB,
// the []byte minimizer is quadratic in the size, and an extraction costs
// milliseconds, so every new-coverage input would otherwise take a worker
// for the whole minute and a 30-60s run would do almost no fuzzing.
func TestMain(m *testing.M) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.fuzzminimizetime" })
	if f := flag.Lookup("test.fuzzminimizetime"); f != nil && !set {
		_ = f.Value.Set("5s")
	}
	os.Exit(m.Run())
}

// FuzzExtractTar feeds arbitrary bytes to ExtractTar in the layout of
// newExtractEnv, with dest already holding a symlink to the sentinel
// directory ("pre"), a symlink to the victim ("prefile") and a hard link to
// the victim ("hl"). Whatever the outcome:
//   - nothing outside dest is created, removed or modified (the hard link may
//     only be dropped);
//   - dest holds no special files and no setuid/setgid/sticky bits;
//   - every path in dest is a pre-existing one or named by an archive entry
//     (a walk that never follows symlinks, so nothing is reached through one).
//
// On success, dest matches a replay of the archive: the last regular file,
// symlink or directory of each name is there with its content, mode or
// target, none of its parents is a symlink, and the stats add up.
//
// Symlinks themselves may point anywhere (outside dest included): they are
// copied verbatim, like virt-copy-out, and only following them is forbidden.
func FuzzExtractTar(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		e := newExtractEnv(t)
		pre := map[string]bool{".": true, "pre": true, "prefile": true, "hl": true}
		if err := os.Symlink("../outside", filepath.Join(e.dest, "pre")); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(e.victim, filepath.Join(e.dest, "prefile")); err != nil {
			t.Fatal(err)
		}
		if err := os.Link(e.victim, filepath.Join(e.dest, "hl")); err != nil {
			t.Fatal(err)
		}
		before := snapshotOutside(t, e.parent, e.dest)
		_, absErr := os.Lstat(absOutside)

		st, err := ExtractTar(bytes.NewReader(data), e.dest)

		compareOutside(t, before, snapshotOutside(t, e.parent, e.dest), true)
		if b, rerr := os.ReadFile(e.victim); rerr != nil || string(b) != victimContent {
			t.Errorf("victim changed: %q %v", b, rerr)
		}
		if _, lerr := os.Lstat(absOutside); lerr == nil && absErr != nil {
			t.Errorf("%s was created", absOutside)
		}
		checkDestSane(t, e.dest)

		m, replayErr := replayTar(data)
		root, rerr := os.OpenRoot(e.dest)
		if rerr != nil {
			t.Fatal(rerr)
		}
		defer root.Close()
		werr := fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !pre[p] && !m.names[p] {
				t.Errorf("%s in dest is not named by the archive", p)
			}
			return nil
		})
		if werr != nil {
			t.Fatalf("walking dest: %v", werr)
		}
		if err != nil {
			return
		}
		if replayErr != nil {
			t.Fatalf("ExtractTar succeeded but the archive does not read back: %v", replayErr)
		}
		if st.Files != m.files || st.Bytes != m.bytes {
			t.Errorf("stats %d files %d bytes, replay says %d, %d", st.Files, st.Bytes, m.files, m.bytes)
		}
		for name, want := range m.final {
			checkModelEntry(t, root, name, want)
		}
	})
}

// modelEntry is the expected final state of one archive name.
type modelEntry struct {
	typ  byte
	sum  [32]byte
	mode fs.FileMode
	link string
}

type tarModel struct {
	final map[string]modelEntry
	names map[string]bool // every cleaned name and its parents
	files int
	bytes int64
}

// replayTar reads data as ExtractTar should interpret it, up to the first error.
func replayTar(data []byte) (tarModel, error) {
	m := tarModel{final: map[string]modelEntry{}, names: map[string]bool{}}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return m, nil
		}
		if err != nil {
			return m, err
		}
		name := path.Clean(h.Name)
		for n := name; n != "." && n != "/" && n != ""; n = path.Dir(n) {
			m.names[n] = true
		}
		if name == "." || strings.HasPrefix(name, "/") || strings.HasPrefix(name, "../") || name == ".." {
			continue
		}
		switch h.Typeflag {
		case tar.TypeReg:
			if isSparse(h) {
				continue
			}
			hsh := sha256.New()
			n, err := io.Copy(hsh, tr)
			if err != nil {
				return m, err
			}
			e := modelEntry{typ: tar.TypeReg, mode: fs.FileMode(h.Mode) & 0o777}
			copy(e.sum[:], hsh.Sum(nil))
			m.final[name] = e
			m.files++
			m.bytes += n
		case tar.TypeSymlink:
			m.final[name] = modelEntry{typ: tar.TypeSymlink, link: h.Linkname}
			m.files++
		case tar.TypeDir:
			m.final[name] = modelEntry{typ: tar.TypeDir}
		}
	}
}

// checkModelEntry verifies one name in dest without following any symlink.
func checkModelEntry(t *testing.T, root *os.Root, name string, want modelEntry) {
	t.Helper()
	parts := strings.Split(name, "/")
	for i := 1; i < len(parts); i++ {
		p := strings.Join(parts[:i], "/")
		fi, err := root.Lstat(p)
		if err != nil || !fi.IsDir() {
			t.Errorf("parent %s of %s: %v %v, want a real directory", p, name, modeOf(fi), err)
			return
		}
	}
	fi, err := root.Lstat(name)
	if err != nil {
		t.Errorf("%s: %v", name, err)
		return
	}
	switch want.typ {
	case tar.TypeReg:
		if !fi.Mode().IsRegular() || fi.Mode().Perm() != want.mode || fi.Mode()&^fs.ModePerm != 0 {
			t.Errorf("%s: mode %v, want regular %v", name, fi.Mode(), want.mode)
			return
		}
		b, err := root.ReadFile(name)
		if err != nil || sha256.Sum256(b) != want.sum {
			t.Errorf("%s: content differs from the archive (%v)", name, err)
		}
	case tar.TypeSymlink:
		got, err := root.Readlink(name)
		if fi.Mode()&fs.ModeSymlink == 0 || err != nil || got != want.link {
			t.Errorf("%s: %v -> %q (%v), want symlink to %q", name, fi.Mode(), got, err, want.link)
		}
	case tar.TypeDir:
		if !fi.IsDir() || fi.Mode().Perm()&0o700 != 0o700 {
			t.Errorf("%s: %v, want an owner-accessible directory", name, fi.Mode())
		}
	}
}

func modeOf(fi fs.FileInfo) string {
	if fi == nil {
		return "missing"
	}
	return fi.Mode().String()
}

// fuzzSeeds are the hostile archives of testdata/fuzz/FuzzExtractTar, for
// the environment FuzzExtractTar sets up (relative names only).
var fuzzSeeds = map[string][]tentry{
	"dotdot":          {dir("a/"), reg("../outside/x", "evil"), reg("a/../../victim", "evil")},
	"absolute":        {reg(absOutside+"/x", "evil"), dir(absOutside + "/")},
	"symlink_abs":     {sym("a", absOutside), reg("a/x", "evil")},
	"symlink_dotdot":  {sym("a", "../.."), dir("b/"), reg("a/outside/x", "evil"), dir("a/outside/d/")},
	"symlink_hard":    {sym("a", "../outside"), hard("h", "a/x"), hard("a/h", "../victim"), hard("h2", "../victim")},
	"preexisting":     {reg("pre/x", "evil"), reg("prefile", "new"), reg("hl", "new"), sym("pre", "/etc"), dir("pre/")},
	"preexisting_ok":  {reg("prefile", "new"), reg("hl", "new"), sym("pre", "/etc"), sym("prefile", "../victim"), reg("pre", "x")},
	"replace":         {reg("f", "one"), sym("f", "../victim"), reg("f", "two"), sym("g", "."), dir("f/")},
	"devices_setuid":  {dir("dev/"), dev(tar.TypeChar, "dev/null", 1, 3), dev(tar.TypeBlock, "dev/sda", 8, 0), dev(tar.TypeFifo, "dev/p", 0, 0), regMode("dev/suid", "x", 0o6755), dirMode("dev/sticky/", 0o1777)},
	"valid_tree":      {dir("etc/"), regMode("etc/hosts", "127.0.0.1 localhost\n", 0o644), sym("etc/localtime", "/usr/share/zoneinfo/UTC"), dir("etc/ssh/"), regMode("etc/ssh/key", "secret", 0o600), sym("etc/ssh/link", "key"), dirMode("etc/ro/", 0o555)},
	"sparse_bomb":     {{typ: tar.TypeReg, name: "big", mode: 0o644, body: "A", pax: []string{"GNU.sparse.major", "0", "GNU.sparse.minor", "1", "GNU.sparse.size", "1099511627776", "GNU.sparse.numblocks", "1", "GNU.sparse.map", "1099511627775,1"}}, reg("after", "z")},
	"pax_path":        {{typ: tar.TypeReg, name: "ok", mode: 0o644, body: "x", pax: []string{"path", "../outside/x"}}, {typ: tar.TypeSymlink, name: "l", mode: 0o777, pax: []string{"linkpath", absOutside}}, reg("l/x", "y")},
	"gnu_long_name":   {{typ: tar.TypeReg, gnu: true, mode: 0o644, name: "../outside/" + strings.Repeat("g", 120), body: "x"}},
	"nul_in_pax_path": {{typ: tar.TypeReg, name: "ok", mode: 0o644, pax: []string{"path", "a\x00b"}}},
}

// TestWriteFuzzSeeds regenerates the checked-in corpus when
// FSOPS_WRITE_FUZZ_SEEDS=1; otherwise it checks the corpus is current.
func TestWriteFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzExtractTar")
	write := os.Getenv("FSOPS_WRITE_FUZZ_SEEDS") == "1"
	if write {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, ents := range fuzzSeeds {
		b := buildTar(t, "", ents)
		// The end-of-archive blocks are optional for archive/tar: drop them.
		b = b[:len(b)-1024]
		content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		p := filepath.Join(dir, name)
		if write {
			if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(p)
		if err != nil || string(got) != content {
			t.Errorf("fuzz seed %s is missing or stale (%v); run FSOPS_WRITE_FUZZ_SEEDS=1 go test ./fsops -run TestWriteFuzzSeeds", p, err)
		}
	}
}
