package fsops

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// absOutside is a fixed absolute path outside every test directory that
// hostile archives aim at; it must never come into existence.
const absOutside = "/tmp/imgbake-fsops-test-outside"

const victimContent = "precious host file\n"

// extractEnv is the layout every case runs in:
//
//	parent/dest     the extraction directory
//	parent/outside  a sentinel directory that must stay empty
//	parent/victim   a host file that must stay unchanged
type extractEnv struct {
	parent, dest, out, victim string
}

func newExtractEnv(tb testing.TB) extractEnv {
	tb.Helper()
	p := tb.TempDir()
	e := extractEnv{parent: p, dest: filepath.Join(p, "dest"), out: filepath.Join(p, "outside"), victim: filepath.Join(p, "victim")}
	for _, d := range []string{e.dest, e.out} {
		if err := os.Mkdir(d, 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	if err := os.WriteFile(e.victim, []byte(victimContent), 0o644); err != nil {
		tb.Fatal(err)
	}
	return e
}

type extractCase struct {
	name string
	// pre prepares dest (and around it) before extraction.
	pre  func(t *testing.T, e extractEnv)
	ents []tentry
	// mangle rewrites the built stream (truncation, garbage...).
	mangle func([]byte) []byte
	// wantErr: nil means success; errAny accepts any non-nil error.
	wantErr error
	errAny  bool
	// On success, the expected stats.
	files   int
	bytes   int64
	skipped []string
	check   func(t *testing.T, e extractEnv)
	// unlinked: a hard link to the victim inside dest may be removed.
	unlinked bool
}

func wantRegular(t *testing.T, p, content string, mode fs.FileMode) {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Errorf("want regular file %s: %v", p, err)
		return
	}
	if !fi.Mode().IsRegular() {
		t.Errorf("%s: mode %v, want a regular file", p, fi.Mode())
		return
	}
	if fi.Mode() != mode {
		t.Errorf("%s: mode %v, want %v", p, fi.Mode(), mode)
	}
	if b, err := os.ReadFile(p); err != nil || string(b) != content {
		t.Errorf("%s: content %q (%v), want %q", p, b, err, content)
	}
}

func wantDir(t *testing.T, p string, mode fs.FileMode) {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Errorf("want directory %s: %v", p, err)
		return
	}
	if fi.Mode() != fs.ModeDir|mode {
		t.Errorf("%s: mode %v, want %v", p, fi.Mode(), fs.ModeDir|mode)
	}
}

func wantSymlink(t *testing.T, p, target string) {
	t.Helper()
	got, err := os.Readlink(p)
	if err != nil || got != target {
		t.Errorf("%s: symlink to %q (%v), want %q", p, got, err, target)
	}
}

func wantAbsent(t *testing.T, p string) {
	t.Helper()
	if fi, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s should not exist: %v %v", p, fi, err)
	}
}

func preSymlink(name, target string) func(*testing.T, extractEnv) {
	return func(t *testing.T, e extractEnv) {
		target = strings.ReplaceAll(target, outPH, e.out)
		if err := os.Symlink(target, filepath.Join(e.dest, name)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestExtractTarHostile(t *testing.T) {
	long := strings.Repeat("n", 300) // over NAME_MAX
	var deep []tentry                // a path well over PATH_MAX
	deepName := ""
	for i := 0; i < 24; i++ {
		deepName += fmt.Sprintf("%03d%s/", i, strings.Repeat("d", 240))
		deep = append(deep, dir(deepName))
	}
	deep = append(deep, reg(deepName+"leaf", "deep"))
	var many []tentry
	for i := 0; i < 40; i++ {
		many = append(many, dir(fmt.Sprintf("d%02d/", i)))
		for j := 0; j < 50; j++ {
			many = append(many, reg(fmt.Sprintf("d%02d/f%02d", i, j), "xy"))
		}
	}

	cases := []extractCase{
		// Names that leave dest.
		{name: "dotdot file", ents: []tentry{reg("../outside/x", "evil")}, wantErr: ErrUnsafePath},
		{name: "dotdot victim", ents: []tentry{reg("../victim", "evil")}, wantErr: ErrUnsafePath},
		{name: "dotdot after dir", ents: []tentry{dir("a/"), reg("a/../../outside/x", "evil")}, wantErr: ErrUnsafePath},
		{name: "dotdot inside stays refused", ents: []tentry{dir("a/"), reg("a/../b", "x")}, wantErr: ErrUnsafePath},
		{name: "dotdot dir", ents: []tentry{dir("../outside/d/")}, wantErr: ErrUnsafePath},
		{name: "dotdot symlink name", ents: []tentry{sym("../outside/l", "/etc")}, wantErr: ErrUnsafePath},
		{name: "dotdot device name", ents: []tentry{dev(tar.TypeChar, "../outside/null", 1, 3)}, wantErr: ErrUnsafePath},
		{name: "dotdot hardlink name", ents: []tentry{hard("../outside/h", "x")}, wantErr: ErrUnsafePath},
		{name: "bare dotdot", ents: []tentry{dir("../")}, wantErr: ErrUnsafePath},
		{name: "absolute file", ents: []tentry{reg(outPH+"/x", "evil")}, wantErr: ErrUnsafePath},
		{name: "absolute fixed path", ents: []tentry{reg(absOutside, "evil")}, wantErr: ErrUnsafePath},
		{name: "absolute dir", ents: []tentry{dir(outPH + "/d/")}, wantErr: ErrUnsafePath},
		{name: "absolute root", ents: []tentry{dir("/")}, wantErr: ErrUnsafePath},
		{name: "double slash absolute", ents: []tentry{reg("//"+outPH+"/x", "evil")}, wantErr: ErrUnsafePath},
		{name: "empty name", ents: []tentry{reg("", "x")}, wantErr: ErrUnsafePath},
		{name: "NUL in PAX path", ents: []tentry{{typ: tar.TypeReg, name: "ok", mode: 0o644, pax: []string{"path", "a\x00/../../outside/x"}}}, wantErr: tar.ErrHeader},
		{name: "PAX path overrides safe name", ents: []tentry{{typ: tar.TypeReg, name: "ok", mode: 0o644, pax: []string{"path", "../outside/x"}}}, wantErr: ErrUnsafePath},
		{name: "PAX linkpath overrides", ents: []tentry{{typ: tar.TypeSymlink, name: "l", mode: 0o777, pax: []string{"path", "../outside/l", "linkpath", "/"}}}, wantErr: ErrUnsafePath},
		{name: "GNU long name dotdot", ents: []tentry{{typ: tar.TypeReg, gnu: true, mode: 0o644, name: "../outside/" + strings.Repeat("g", 120)}}, wantErr: ErrUnsafePath},
		{
			name: "dot entries are harmless", ents: []tentry{dir("./"), dir("."), reg("./a", "A"), reg("b/./../a", "x")},
			wantErr: ErrUnsafePath, // the last one
			check:   func(t *testing.T, e extractEnv) { wantRegular(t, filepath.Join(e.dest, "a"), "A", 0o644) },
		},
		{
			name: "backslashes are plain characters", ents: []tentry{reg(`..\outside\x`, "x")}, files: 1, bytes: 1,
			check: func(t *testing.T, e extractEnv) { wantRegular(t, filepath.Join(e.dest, `..\outside\x`), "x", 0o644) },
		},

		// Symlinks created by the stream are kept but never followed.
		{
			name: "symlink absolute then file through it", ents: []tentry{sym("a", outPH), reg("a/x", "evil")}, wantErr: ErrUnsafePath,
			check: func(t *testing.T, e extractEnv) { wantSymlink(t, filepath.Join(e.dest, "a"), e.out) },
		},
		{name: "symlink fixed path then file", ents: []tentry{sym("a", absOutside), reg("a/x", "evil")}, wantErr: ErrUnsafePath},
		{name: "symlink tmp then file", ents: []tentry{sym("a", "/tmp"), reg("a/imgbake-fsops-test-outside", "evil")}, wantErr: ErrUnsafePath},
		{name: "symlink dotdot then file", ents: []tentry{sym("a", "../outside"), reg("a/x", "evil")}, wantErr: ErrUnsafePath},
		{name: "symlink dotdot-dotdot then deep file", ents: []tentry{sym("a", "../.."), dir("b/"), reg("a/b/x", "evil")}, wantErr: ErrUnsafePath},
		{name: "symlink then dir through it", ents: []tentry{sym("a", outPH), dir("a/sub/")}, wantErr: ErrUnsafePath},
		{name: "symlink then dir of same name", ents: []tentry{sym("a", outPH), dir("a/")}, wantErr: ErrUnsafePath},
		{name: "symlink then symlink through it", ents: []tentry{sym("a", outPH), sym("a/l", "/etc/shadow")}, wantErr: ErrUnsafePath},
		{name: "symlink then device through it", ents: []tentry{sym("a", outPH), dev(tar.TypeFifo, "a/p", 0, 0)}, wantErr: ErrUnsafePath},
		{name: "symlink nested in dir then file", ents: []tentry{dir("d/"), sym("d/l", "../../outside"), reg("d/l/x", "evil")}, wantErr: ErrUnsafePath},
		{name: "symlink to inside dir is not followed either", ents: []tentry{dir("real/"), sym("a", "real"), reg("a/x", "x")}, wantErr: ErrUnsafePath},
		{name: "symlink to itself then file", ents: []tentry{sym("a", "a"), reg("a/x", "x")}, wantErr: ErrUnsafePath},
		{
			name: "file replaces symlink to victim", ents: []tentry{sym("a", "../victim"), reg("a", "new")}, files: 2, bytes: 3,
			check: func(t *testing.T, e extractEnv) { wantRegular(t, filepath.Join(e.dest, "a"), "new", 0o644) },
		},
		{
			name: "file replaces absolute symlink to victim", ents: []tentry{sym("a", outPH+"/../victim"), reg("a", "new")}, files: 2, bytes: 3,
			check: func(t *testing.T, e extractEnv) { wantRegular(t, filepath.Join(e.dest, "a"), "new", 0o644) },
		},
		{
			name: "dangling symlink then file of same name", ents: []tentry{sym("a", "../outside/created"), reg("a", "new")}, files: 2, bytes: 3,
			check: func(t *testing.T, e extractEnv) { wantRegular(t, filepath.Join(e.dest, "a"), "new", 0o644) },
		},
		{
			name: "symlink replaces symlink", ents: []tentry{sym("a", "../victim"), sym("a", "b")}, files: 2,
			check: func(t *testing.T, e extractEnv) { wantSymlink(t, filepath.Join(e.dest, "a"), "b") },
		},
		{
			name: "symlinks kept verbatim", ents: []tentry{sym("abs", "/etc/passwd"), sym("up", "../../.."), sym("in", "x/y")}, files: 3,
			check: func(t *testing.T, e extractEnv) {
				wantSymlink(t, filepath.Join(e.dest, "abs"), "/etc/passwd")
				wantSymlink(t, filepath.Join(e.dest, "up"), "../../..")
				wantSymlink(t, filepath.Join(e.dest, "in"), "x/y")
			},
		},
		{name: "symlink with empty target", ents: []tentry{sym("a", "")}, errAny: true},
		{name: "symlink over a directory", ents: []tentry{dir("d/"), sym("d", outPH)}, wantErr: ErrUnsafePath, check: func(t *testing.T, e extractEnv) { wantDir(t, filepath.Join(e.dest, "d"), 0o700) }},

		// Hard links are never created.
		{
			name: "symlink then hardlink through it", ents: []tentry{sym("a", outPH), hard("h", "a/../victim"), hard("a/h", "x")},
			wantErr: ErrUnsafePath,
			check:   func(t *testing.T, e extractEnv) { wantAbsent(t, filepath.Join(e.dest, "h")) },
		},
		{
			name: "hardlink to symlink", ents: []tentry{sym("s", "../victim"), hard("h", "s")}, files: 1, skipped: []string{"h"},
			check: func(t *testing.T, e extractEnv) { wantAbsent(t, filepath.Join(e.dest, "h")) },
		},
		{
			name: "hardlink target outside", ents: []tentry{hard("h", "../victim"), hard("h2", outPH+"/../victim"), hard("h3", "/etc/shadow")},
			skipped: []string{"h", "h2", "h3"},
			check: func(t *testing.T, e extractEnv) {
				wantAbsent(t, filepath.Join(e.dest, "h"))
				wantAbsent(t, filepath.Join(e.dest, "h2"))
				wantAbsent(t, filepath.Join(e.dest, "h3"))
			},
		},
		{
			name: "hardlink inside is skipped too", ents: []tentry{reg("f", "x"), hard("h", "f")}, files: 1, bytes: 1, skipped: []string{"h"},
			check: func(t *testing.T, e extractEnv) { wantAbsent(t, filepath.Join(e.dest, "h")) },
		},

		// Pre-existing entries in dest.
		{
			name: "pre-existing symlink dir: file through it", pre: preSymlink("evil", outPH),
			ents: []tentry{reg("evil/x", "evil")}, wantErr: ErrUnsafePath,
		},
		{
			name: "pre-existing relative symlink: file through it", pre: preSymlink("evil", "../outside"),
			ents: []tentry{reg("evil/x", "evil")}, wantErr: ErrUnsafePath,
		},
		{
			name: "pre-existing symlink: dir of same name", pre: preSymlink("evil", outPH),
			ents: []tentry{dir("evil/"), reg("evil/x", "evil")}, wantErr: ErrUnsafePath,
		},
		{
			name: "pre-existing symlink: nested dir through it", pre: preSymlink("evil", outPH),
			ents: []tentry{dir("evil/sub/"), reg("evil/sub/x", "evil")}, wantErr: ErrUnsafePath,
		},
		{
			name: "pre-existing symlink to victim: replaced by file", pre: preSymlink("f", "../victim"),
			ents: []tentry{regMode("f", "new", 0o600)}, files: 1, bytes: 3,
			check: func(t *testing.T, e extractEnv) { wantRegular(t, filepath.Join(e.dest, "f"), "new", 0o600) },
		},
		{
			name: "pre-existing symlink to victim: replaced by symlink", pre: preSymlink("f", "../victim"),
			ents: []tentry{sym("f", "elsewhere")}, files: 1,
			check: func(t *testing.T, e extractEnv) { wantSymlink(t, filepath.Join(e.dest, "f"), "elsewhere") },
		},
		{
			name: "pre-existing symlink to victim: device skipped", pre: preSymlink("f", "../victim"),
			ents: []tentry{dev(tar.TypeBlock, "f", 8, 0)}, skipped: []string{"f"},
			check: func(t *testing.T, e extractEnv) { wantSymlink(t, filepath.Join(e.dest, "f"), "../victim") },
		},
		{
			name: "pre-existing hard link to victim: replaced, victim intact",
			pre: func(t *testing.T, e extractEnv) {
				if err := os.Link(e.victim, filepath.Join(e.dest, "hl")); err != nil {
					t.Fatal(err)
				}
			},
			ents: []tentry{reg("hl", "new")}, files: 1, bytes: 3, unlinked: true,
			check: func(t *testing.T, e extractEnv) { wantRegular(t, filepath.Join(e.dest, "hl"), "new", 0o644) },
		},
		{
			name: "pre-existing dest subdir symlink nested", pre: func(t *testing.T, e extractEnv) {
				if err := os.Mkdir(filepath.Join(e.dest, "d"), 0o755); err != nil {
					t.Fatal(err)
				}
				preSymlink("d/l", "../../outside")(t, e)
			},
			ents: []tentry{dir("d/"), reg("d/l/x", "evil")}, wantErr: ErrUnsafePath,
		},

		// Type clashes.
		{
			name: "dir replacing a file from the stream", ents: []tentry{reg("f", "x"), dir("f/")}, wantErr: ErrUnsafePath,
			check: func(t *testing.T, e extractEnv) { wantRegular(t, filepath.Join(e.dest, "f"), "x", 0o644) },
		},
		{
			name: "dir replacing a pre-existing file",
			pre: func(t *testing.T, e extractEnv) {
				if err := os.WriteFile(filepath.Join(e.dest, "f"), []byte("old"), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			ents: []tentry{dir("f/")}, wantErr: ErrUnsafePath,
			check: func(t *testing.T, e extractEnv) { wantRegular(t, filepath.Join(e.dest, "f"), "old", 0o644) },
		},
		{name: "file replacing a dir", ents: []tentry{dir("d/"), reg("d", "x")}, wantErr: ErrUnsafePath},
		{name: "file under a file", ents: []tentry{reg("f", "x"), reg("f/x", "y")}, wantErr: ErrUnsafePath},
		{name: "parent missing from archive", ents: []tentry{reg("nodir/x", "y")}, wantErr: ErrUnsafePath},
		{
			name: "existing dir is reused", pre: func(t *testing.T, e extractEnv) {
				if err := os.Mkdir(filepath.Join(e.dest, "d"), 0o755); err != nil {
					t.Fatal(err)
				}
			},
			ents: []tentry{dir("d/"), reg("d/x", "y")}, files: 1, bytes: 1,
			check: func(t *testing.T, e extractEnv) { wantRegular(t, filepath.Join(e.dest, "d/x"), "y", 0o644) },
		},
		{
			name: "duplicate file: last wins", ents: []tentry{reg("f", "first"), regMode("f", "second", 0o640)}, files: 2, bytes: 11,
			check: func(t *testing.T, e extractEnv) { wantRegular(t, filepath.Join(e.dest, "f"), "second", 0o640) },
		},

		// Special files are skipped.
		{
			name: "devices and fifos skipped",
			ents: []tentry{
				dir("dev/"), dev(tar.TypeChar, "dev/null", 1, 3), dev(tar.TypeChar, "dev/mem", 1, 1),
				dev(tar.TypeBlock, "dev/sda", 8, 0), dev(tar.TypeFifo, "dev/fifo", 0, 0), reg("dev/ok", "k"),
			},
			files: 1, bytes: 1, skipped: []string{"dev/null", "dev/mem", "dev/sda", "dev/fifo"},
			check: func(t *testing.T, e extractEnv) {
				for _, n := range []string{"null", "mem", "sda", "fifo"} {
					wantAbsent(t, filepath.Join(e.dest, "dev", n))
				}
			},
		},
		{
			name: "PAX sparse bomb skipped",
			ents: []tentry{{typ: tar.TypeReg, name: "big", mode: 0o644, body: "A", pax: []string{
				"GNU.sparse.major", "0", "GNU.sparse.minor", "1", "GNU.sparse.size", "1099511627776",
				"GNU.sparse.numblocks", "1", "GNU.sparse.map", "1099511627775,1",
			}}, reg("after", "z")},
			files: 1, bytes: 1, skipped: []string{"big"},
			check: func(t *testing.T, e extractEnv) { wantAbsent(t, filepath.Join(e.dest, "big")) },
		},
		{
			name: "PAX 1.0 sparse skipped",
			ents: []tentry{{typ: tar.TypeReg, name: "big", mode: 0o644, body: "0\n" + strings.Repeat("\x00", 510), pax: []string{
				"GNU.sparse.major", "1", "GNU.sparse.minor", "0", "GNU.sparse.realsize", "1099511627776", "GNU.sparse.name", "big",
			}}},
			skipped: []string{"big"},
			check:   func(t *testing.T, e extractEnv) { wantAbsent(t, filepath.Join(e.dest, "big")) },
		},
		{
			name: "old GNU sparse skipped", ents: []tentry{{typ: tar.TypeReg, name: "s", mode: 0o644, oldSparse: true}}, skipped: []string{"s"},
			check: func(t *testing.T, e extractEnv) { wantAbsent(t, filepath.Join(e.dest, "s")) },
		},

		// Modes.
		{
			name: "setuid setgid sticky stripped",
			ents: []tentry{
				regMode("suid", "x", 0o4755), regMode("sgid", "x", 0o2755), regMode("sticky", "x", 0o1777),
				regMode("all", "x", 0o7777), dirMode("sdir/", 0o3775), regMode("sdir/f", "x", 0o6711),
			},
			files: 5, bytes: 5,
			check: func(t *testing.T, e extractEnv) {
				wantRegular(t, filepath.Join(e.dest, "suid"), "x", 0o755)
				wantRegular(t, filepath.Join(e.dest, "sgid"), "x", 0o755)
				wantRegular(t, filepath.Join(e.dest, "sticky"), "x", 0o777)
				wantRegular(t, filepath.Join(e.dest, "all"), "x", 0o777)
				wantRegular(t, filepath.Join(e.dest, "sdir/f"), "x", 0o711)
				wantDir(t, filepath.Join(e.dest, "sdir"), 0o775)
			},
		},
		{
			name:  "modes exact despite umask; dirs stay owner-writable",
			ents:  []tentry{regMode("zero", "x", 0), regMode("rw", "x", 0o666), dirMode("ro/", 0o555), regMode("ro/f", "y", 0o444), dirMode("none/", 0)},
			files: 3, bytes: 3,
			check: func(t *testing.T, e extractEnv) {
				wantRegular(t, filepath.Join(e.dest, "zero"), "x", 0)
				wantRegular(t, filepath.Join(e.dest, "rw"), "x", 0o666)
				wantRegular(t, filepath.Join(e.dest, "ro/f"), "y", 0o444)
				wantDir(t, filepath.Join(e.dest, "ro"), 0o755)
				wantDir(t, filepath.Join(e.dest, "none"), 0o700)
			},
		},

		// Size and shape.
		{name: "component over NAME_MAX", ents: []tentry{reg(long, "x")}, wantErr: syscall.ENAMETOOLONG},
		{name: "dotdot hidden after long name", ents: []tentry{reg(strings.Repeat("a/", 200)+"../x", "x")}, wantErr: ErrUnsafePath},
		{
			name: "path over PATH_MAX", ents: deep, files: 1, bytes: 4,
			check: func(t *testing.T, e extractEnv) {
				r, err := os.OpenRoot(e.dest)
				if err != nil {
					t.Fatal(err)
				}
				defer r.Close()
				if b, err := r.ReadFile(deepName + "leaf"); err != nil || string(b) != "deep" {
					t.Errorf("deep leaf: %q %v", b, err)
				}
			},
		},
		{name: "many entries", ents: many, files: 40 * 50, bytes: 40 * 50 * 2},

		// Broken streams.
		{name: "empty stream", mangle: func([]byte) []byte { return nil }},
		{name: "only end marker", mangle: func([]byte) []byte { return make([]byte, 1024) }},
		{name: "garbage", mangle: func([]byte) []byte { return bytes.Repeat([]byte("garbage!"), 128) }, wantErr: tar.ErrHeader},
		{
			name: "truncated data", ents: []tentry{reg("f", strings.Repeat("x", 2000))},
			mangle: func(b []byte) []byte { return b[:512+100] }, wantErr: io.ErrUnexpectedEOF,
		},
		{name: "truncated header", ents: []tentry{reg("f", "x")}, mangle: func(b []byte) []byte { return b[:300] }, wantErr: io.ErrUnexpectedEOF},
	}

	outsideBefore, err := os.Lstat(absOutside)
	if err == nil {
		t.Logf("%s exists before the test (%v); not checking it", absOutside, outsideBefore.Mode())
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newExtractEnv(t)
			if c.pre != nil {
				c.pre(t, e)
			}
			var stream []byte
			if c.ents != nil {
				stream = buildTar(t, e.out, c.ents)
			}
			if c.mangle != nil {
				stream = c.mangle(stream)
			}
			before := snapshotOutside(t, e.parent, e.dest)

			st, err := ExtractTar(bytes.NewReader(stream), e.dest)

			switch {
			case c.errAny:
				if err == nil {
					t.Errorf("ExtractTar succeeded (%+v), want an error", st)
				}
			case c.wantErr != nil:
				if !errors.Is(err, c.wantErr) {
					t.Errorf("ExtractTar error = %v, want %v", err, c.wantErr)
				}
			case err != nil:
				t.Errorf("ExtractTar: %v", err)
			default:
				if st.Files != c.files || st.Bytes != c.bytes || !slices.Equal(st.Skipped, c.skipped) {
					t.Errorf("stats = %d files, %d bytes, skipped %q; want %d, %d, %q", st.Files, st.Bytes, st.Skipped, c.files, c.bytes, c.skipped)
				}
			}
			compareOutside(t, before, snapshotOutside(t, e.parent, e.dest), c.unlinked)
			if b, err := os.ReadFile(e.victim); err != nil || string(b) != victimContent {
				t.Errorf("victim changed: %q %v", b, err)
			}
			if ents, err := os.ReadDir(e.out); err != nil || len(ents) != 0 {
				t.Errorf("sentinel dir: %v %v", ents, err)
			}
			if outsideBefore == nil {
				wantAbsent(t, absOutside)
			}
			checkDestSane(t, e.dest)
			if c.check != nil {
				c.check(t, e)
			}
		})
	}
}

// TestExtractTarDestMissing: no destination, no extraction.
func TestExtractTarDestMissing(t *testing.T) {
	parent := t.TempDir()
	_, err := ExtractTar(bytes.NewReader(buildTar(t, "", []tentry{reg("f", "x")})), filepath.Join(parent, "nope"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err = %v, want ErrNotExist", err)
	}
	if ents, _ := os.ReadDir(parent); len(ents) != 0 {
		t.Fatalf("created %v", ents)
	}
}

// TestExtractTarRoundTrip: a tree written by writeTree (the copy_in side)
// comes back identical, including symlinks that point outside.
func TestExtractTarRoundTrip(t *testing.T) {
	src := t.TempDir()
	tree := filepath.Join(src, "tree")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(tree, "etc/sub"), 0o755))
	must(os.WriteFile(filepath.Join(tree, "etc/hosts"), []byte("127.0.0.1 localhost\n"), 0o644))
	must(os.WriteFile(filepath.Join(tree, "etc/sub/run.sh"), []byte("#!/bin/sh\n"), 0o755))
	must(os.Symlink("/usr/share/zoneinfo/UTC", filepath.Join(tree, "etc/localtime")))
	must(os.Symlink("sub/run.sh", filepath.Join(tree, "etc/run")))

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	fi, err := os.Lstat(tree)
	must(err)
	must(writeTree(tw, tree, "tree", fi))
	must(tw.Close())

	dest := t.TempDir()
	st, err := ExtractTar(&buf, dest)
	must(err)
	if st.Files != 4 || st.Bytes != 30 || len(st.Skipped) != 0 {
		t.Errorf("stats %+v", st)
	}
	wantRegular(t, filepath.Join(dest, "tree/etc/hosts"), "127.0.0.1 localhost\n", 0o644)
	wantRegular(t, filepath.Join(dest, "tree/etc/sub/run.sh"), "#!/bin/sh\n", 0o755)
	wantSymlink(t, filepath.Join(dest, "tree/etc/localtime"), "/usr/share/zoneinfo/UTC")
	wantSymlink(t, filepath.Join(dest, "tree/etc/run"), "sub/run.sh")
	wantDir(t, filepath.Join(dest, "tree/etc"), 0o755)
}
