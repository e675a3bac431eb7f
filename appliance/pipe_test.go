package appliance_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/imgbake/imgbake/appliance"
	"github.com/imgbake/imgbake/appliance/appliancetest"
	"github.com/imgbake/imgbake/appliance/proto"
)

// These tests run the agent in-process over a pipe (appliancetest) on a
// temporary directory: no VM, always run.

func pipeSession(t *testing.T) (*appliance.Session, string, *appliancetest.Machine) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	s, m := appliancetest.Start(t, root)
	return s, root, m
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mode(m uint32) *uint32 { return &m }

func writeString(t *testing.T, s *appliance.Session, args proto.WriteArgs, content string) bool {
	t.Helper()
	changed, err := s.WriteFile(testCtx(t), args, strings.NewReader(content))
	if err != nil {
		t.Fatalf("WriteFile(%s): %v", args.Path, err)
	}
	return changed
}

func mustNotExist(t *testing.T, p string) {
	t.Helper()
	if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("%s exists (or lstat failed: %v): the agent wrote outside the image root", p, err)
	}
}

func readHost(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestPipeStartHelloClose(t *testing.T) {
	s, _, m := pipeSession(t)
	ctx := testCtx(t)
	if s.Ready.Version != proto.Version {
		t.Errorf("ready version %q, want %q", s.Ready.Version, proto.Version)
	}
	r, err := s.Hello(ctx)
	if err != nil || r.Version != proto.Version {
		t.Fatalf("Hello = %+v, %v", r, err)
	}
	mr, err := s.Mount(ctx, proto.MountArgs{})
	if err != nil || len(mr.Mounts) != 1 || mr.Mounts[0].Mountpoint != "/" {
		t.Fatalf("Mount = %+v, %v", mr, err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case <-s.Done():
	default:
		t.Fatal("machine still running after Close")
	}
	if err := m.ServeErr(); err != nil {
		t.Errorf("agent.Serve returned %v after a shutdown", err)
	}
	if err := s.Close(ctx); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := s.Hello(ctx); err == nil {
		t.Error("Hello after Close succeeded")
	}
}

func TestPipeWriteFile(t *testing.T) {
	s, root, _ := pipeSession(t)
	ctx := testCtx(t)
	if err := os.Mkdir(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}

	// New file: default mode 0644, owner 0:0.
	if !writeString(t, s, proto.WriteArgs{Path: "/etc/motd"}, "hello\n") {
		t.Error("new file reported unchanged")
	}
	if got := readHost(t, filepath.Join(root, "etc/motd")); got != "hello\n" {
		t.Errorf("content %q", got)
	}
	st, err := s.Stat(ctx, "/etc/motd")
	if err != nil {
		t.Fatal(err)
	}
	if !st.Exists || fs.FileMode(st.Mode) != 0o644 || st.Size != 6 || st.UID != 0 || st.GID != 0 {
		t.Errorf("stat = %+v, want regular 0644 size 6 owned by 0:0", st)
	}

	// Same content, mode and owner: untouched.
	if writeString(t, s, proto.WriteArgs{Path: "/etc/motd"}, "hello\n") {
		t.Error("identical rewrite reported changed")
	}
	if writeString(t, s, proto.WriteArgs{Path: "/etc/motd", Mode: mode(0o644), Owner: "0:0"}, "hello\n") {
		t.Error("identical rewrite with explicit mode and owner reported changed")
	}
	// Different content, then mode, then owner: each is a change.
	if !writeString(t, s, proto.WriteArgs{Path: "/etc/motd"}, "hello!\n") {
		t.Error("new content reported unchanged")
	}
	if !writeString(t, s, proto.WriteArgs{Path: "/etc/motd", Mode: mode(0o600)}, "hello!\n") {
		t.Error("new mode reported unchanged")
	}
	if !writeString(t, s, proto.WriteArgs{Path: "/etc/motd", Owner: "1234:2345"}, "hello!\n") {
		t.Error("new owner reported unchanged")
	}
	fi, err := os.Stat(filepath.Join(root, "etc/motd"))
	if err != nil {
		t.Fatal(err)
	}
	sys := fi.Sys().(*syscall.Stat_t)
	if fi.Mode() != 0o600 || sys.Uid != 1234 || sys.Gid != 2345 {
		t.Errorf("host sees mode %v owner %d:%d, want 0600 1234:2345 (mode kept from the previous write)", fi.Mode(), sys.Uid, sys.Gid)
	}
	// Without Mode/Owner the existing ones are kept, so this is unchanged.
	if writeString(t, s, proto.WriteArgs{Path: "/etc/motd"}, "hello!\n") {
		t.Error("rewrite keeping mode and owner reported changed")
	}
	// A numeric user alone gets the same number as its group.
	writeString(t, s, proto.WriteArgs{Path: "/etc/byuid", Owner: "4321"}, "x")
	if st, _ := s.Stat(ctx, "/etc/byuid"); st.UID != 4321 || st.GID != 4321 {
		t.Errorf("owner 4321: got %d:%d", st.UID, st.GID)
	}
	// Special bits survive chown.
	writeString(t, s, proto.WriteArgs{Path: "/etc/suid", Mode: mode(0o4755), Owner: "0:0"}, "#!/bin/sh\n")
	if st, _ := s.Stat(ctx, "/etc/suid"); fs.FileMode(st.Mode) != fs.ModeSetuid|0o755 {
		t.Errorf("setuid file mode %v", fs.FileMode(st.Mode))
	}
	// Empty file.
	writeString(t, s, proto.WriteArgs{Path: "/etc/empty"}, "")
	if fi, err := os.Stat(filepath.Join(root, "etc/empty")); err != nil || fi.Size() != 0 {
		t.Errorf("empty file: %v, %v", fi, err)
	}
	// A directory is not replaced by a file.
	if _, err := s.WriteFile(ctx, proto.WriteArgs{Path: "/etc"}, strings.NewReader("x")); !errors.Is(err, syscall.EISDIR) {
		t.Errorf("writing over a directory: %v, want EISDIR", err)
	}
	// Writing needs the parent directory.
	if _, err := s.WriteFile(ctx, proto.WriteArgs{Path: "/nodir/file"}, strings.NewReader("x")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("writing into a missing directory: %v, want fs.ErrNotExist", err)
	}
	if _, err := s.WriteFile(ctx, proto.WriteArgs{Path: "relative"}, strings.NewReader("x")); err == nil {
		t.Error("relative path accepted")
	}
	// No temporary files are left behind.
	ents, _ := os.ReadDir(filepath.Join(root, "etc"))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".imgbake-") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

func TestPipeWriteReadLarge(t *testing.T) {
	s, root, _ := pipeSession(t)
	ctx := testCtx(t)
	data := make([]byte, 5<<20+12345) // 21 chunks of proto.ChunkSize
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	if !writeString(t, s, proto.WriteArgs{Path: "/big"}, string(data)) {
		t.Error("new file reported unchanged")
	}
	if got, err := os.ReadFile(filepath.Join(root, "big")); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("file on disk differs (%d bytes, %v)", len(got), err)
	}
	// The same multi-chunk content again is no change.
	if writeString(t, s, proto.WriteArgs{Path: "/big"}, string(data)) {
		t.Error("identical large rewrite reported changed")
	}
	var out chunkCounter
	n, err := s.ReadFile(ctx, "/big", &out)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(len(data)) || !bytes.Equal(out.buf.Bytes(), data) {
		t.Fatalf("read %d bytes (reported %d), want %d identical", out.buf.Len(), n, len(data))
	}
	if min := len(data) / proto.ChunkSize; out.writes < min {
		t.Errorf("file arrived in %d writes, want at least %d chunks", out.writes, min)
	}
}

// chunkCounter records data and how many frames delivered it.
type chunkCounter struct {
	buf    bytes.Buffer
	writes int
}

func (c *chunkCounter) Write(p []byte) (int, error) {
	c.writes++
	if len(p) > proto.MaxPayload {
		return 0, errors.New("chunk larger than MaxPayload")
	}
	return c.buf.Write(p)
}

func TestPipeReadErrors(t *testing.T) {
	s, root, _ := pipeSession(t)
	ctx := testCtx(t)
	if err := os.Mkdir(filepath.Join(root, "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	_, err := s.ReadFile(ctx, "/missing", &buf)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("ReadFile(missing) = %v, want fs.ErrNotExist", err)
	}
	var re *appliance.RemoteError
	if !errors.As(err, &re) || re.Errno != "ENOENT" || re.Op != proto.OpRead {
		t.Errorf("error %#v is not a RemoteError with ENOENT", err)
	}
	if _, err := s.ReadFile(ctx, "/dir", &buf); !errors.Is(err, syscall.EISDIR) {
		t.Errorf("ReadFile(dir) = %v, want EISDIR", err)
	}
	if _, err := s.ReadFile(ctx, "/dir/missing/deeper", &buf); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadFile(missing parent) = %v, want fs.ErrNotExist", err)
	}
	if _, err := s.TarOut(ctx, "/missing", &buf); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("TarOut(missing) = %v, want fs.ErrNotExist", err)
	}
	if _, err := s.Mkdir(ctx, "/no/parents", nil, "", false); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Mkdir without parents = %v, want fs.ErrNotExist", err)
	}
	if buf.Len() != 0 {
		t.Errorf("%d bytes delivered by failed calls", buf.Len())
	}
	// The session survives errors.
	if _, err := s.Hello(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestPipeStat(t *testing.T) {
	s, root, _ := pipeSession(t)
	ctx := testCtx(t)
	if err := os.WriteFile(filepath.Join(root, "f"), []byte("12345"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(filepath.Join(root, "f"), 11, 22); err != nil {
		t.Fatal(err)
	}
	mtime := time.Date(2020, 1, 2, 3, 4, 5, 6000, time.UTC)
	if err := os.Chtimes(filepath.Join(root, "f"), mtime, mtime); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(root, "d"), fs.ModeSticky|0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/nowhere/at/all", filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	rootFI, err := os.Stat(root)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path string
		want proto.StatResult
	}{
		{"/f", proto.StatResult{Exists: true, Mode: 0o640, Size: 5, UID: 11, GID: 22, MTimeNS: mtime.UnixNano()}},
		{"/d", proto.StatResult{Exists: true, Mode: uint32(fs.ModeDir | fs.ModeSticky | 0o777)}},
		{"/link", proto.StatResult{Exists: true, Mode: uint32(fs.ModeSymlink | 0o777), Target: "/nowhere/at/all"}},
		{"/missing", proto.StatResult{}},
		{"/missing/below", proto.StatResult{}},
		{"/", proto.StatResult{Exists: true, Mode: uint32(rootFI.Mode())}},
	}
	for _, tt := range tests {
		got, err := s.Stat(ctx, tt.path)
		if err != nil {
			t.Errorf("Stat(%s): %v", tt.path, err)
			continue
		}
		if tt.want.MTimeNS == 0 {
			got.MTimeNS = 0
		}
		if tt.want.Size == 0 && got.Mode&uint32(fs.ModeType) != 0 {
			got.Size = 0
		}
		if got != tt.want {
			t.Errorf("Stat(%s) = %+v (%v), want %+v (%v)", tt.path, got, fs.FileMode(got.Mode), tt.want, fs.FileMode(tt.want.Mode))
		}
	}
}

func TestPipeMkdir(t *testing.T) {
	s, root, _ := pipeSession(t)
	ctx := testCtx(t)
	m := fs.FileMode(0o750)
	changed, err := s.Mkdir(ctx, "/a/b/c", &m, "100:200", true)
	if err != nil || !changed {
		t.Fatalf("Mkdir(parents) = %v, %v", changed, err)
	}
	for _, d := range []string{"a", "a/b"} {
		fi, err := os.Stat(filepath.Join(root, d))
		if err != nil || !fi.IsDir() {
			t.Fatalf("parent %s: %v", d, err)
		}
	}
	fi, err := os.Stat(filepath.Join(root, "a/b/c"))
	if err != nil {
		t.Fatal(err)
	}
	sys := fi.Sys().(*syscall.Stat_t)
	if fi.Mode() != fs.ModeDir|0o750 || sys.Uid != 100 || sys.Gid != 200 {
		t.Errorf("a/b/c: mode %v owner %d:%d", fi.Mode(), sys.Uid, sys.Gid)
	}
	if changed, err := s.Mkdir(ctx, "/a/b/c", &m, "100:200", true); err != nil || changed {
		t.Errorf("repeated Mkdir = %v, %v; want unchanged", changed, err)
	}
	if changed, err := s.Mkdir(ctx, "/a/b/c", nil, "", false); err != nil || changed {
		t.Errorf("Mkdir of an existing directory = %v, %v; want unchanged", changed, err)
	}
	m2 := fs.FileMode(0o700) | fs.ModeSetgid
	if changed, err := s.Mkdir(ctx, "/a/b/c", &m2, "", false); err != nil || !changed {
		t.Errorf("Mkdir with a new mode = %v, %v; want changed", changed, err)
	}
	if fi, _ := os.Stat(filepath.Join(root, "a/b/c")); fi.Mode() != fs.ModeDir|fs.ModeSetgid|0o700 {
		t.Errorf("mode after Mkdir %v", fi.Mode())
	}
	if err := os.WriteFile(filepath.Join(root, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Mkdir(ctx, "/file", nil, "", true); err == nil {
		t.Error("Mkdir over a regular file succeeded")
	}
	if _, err := s.Mkdir(ctx, "/file/sub", nil, "", true); err == nil {
		t.Error("Mkdir below a regular file succeeded")
	}
}

func TestPipeDelete(t *testing.T) {
	s, root, _ := pipeSession(t)
	ctx := testCtx(t)
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "keep"), []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"tree/a/b", "tree/c", "empty"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"tree/x", "tree/a/y", "tree/a/b/z", "single"} {
		if err := os.WriteFile(filepath.Join(root, f), []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Symlinks in the tree must be removed, never followed.
	if err := os.Symlink(outside, filepath.Join(root, "tree/c/out")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../..", filepath.Join(root, "tree/a/up")); err != nil {
		t.Fatal(err)
	}
	// A read-only directory inside the tree does not stop root.
	if err := os.Chmod(filepath.Join(root, "tree/a/b"), 0o500); err != nil {
		t.Fatal(err)
	}

	if _, err := s.Delete(ctx, "/tree", false); !errors.Is(err, syscall.ENOTEMPTY) {
		t.Errorf("non-recursive delete of a full directory = %v, want ENOTEMPTY", err)
	}
	if changed, err := s.Delete(ctx, "/tree", true); err != nil || !changed {
		t.Fatalf("recursive Delete = %v, %v", changed, err)
	}
	mustNotExist(t, filepath.Join(root, "tree"))
	if got := readHost(t, filepath.Join(outside, "keep")); got != "keep" {
		t.Errorf("file outside the root changed: %q", got)
	}
	if changed, err := s.Delete(ctx, "/empty", false); err != nil || !changed {
		t.Errorf("Delete(empty dir) = %v, %v", changed, err)
	}
	if changed, err := s.Delete(ctx, "/single", false); err != nil || !changed {
		t.Errorf("Delete(file) = %v, %v", changed, err)
	}
	for _, p := range []string{"/tree", "/missing/below"} {
		if changed, err := s.Delete(ctx, p, true); err != nil || changed {
			t.Errorf("Delete(%s) of nothing = %v, %v; want unchanged, no error", p, changed, err)
		}
	}
	if _, err := s.Delete(ctx, "/", true); err == nil {
		t.Error("deleting / succeeded")
	}
	if _, err := os.Stat(root); err != nil {
		t.Fatalf("root gone: %v", err)
	}
}

type tarEntry struct {
	typ    byte
	mode   int64
	uid    int
	body   string
	target string
}

func readTar(t *testing.T, r io.Reader) map[string]tarEntry {
	t.Helper()
	got := map[string]tarEntry{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return got
		}
		if err != nil {
			t.Fatalf("reading tar: %v", err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		got[h.Name] = tarEntry{typ: h.Typeflag, mode: h.Mode, uid: h.Uid, body: string(body), target: h.Linkname}
	}
}

func TestPipeTarRoundTrip(t *testing.T) {
	s, root, _ := pipeSession(t)
	ctx := testCtx(t)
	big := strings.Repeat("0123456789", 100_000) // several frames
	// Parents come before their children, as fsops.CopyIn writes them: the
	// agent does not create missing parents of an entry.
	order := []string{"app/", "app/bin/", "app/bin/run", "app/data.bin", "app/empty", "app/link", "app/abs",
		"app/ro/", "app/ro/inside", "app/setuid", "app/../../escape", "/app/absolute-name"}
	in := map[string]tarEntry{
		"app/":               {typ: tar.TypeDir, mode: 0o755},
		"app/bin/":           {typ: tar.TypeDir, mode: 0o750, uid: 7},
		"app/bin/run":        {typ: tar.TypeReg, mode: 0o755, uid: 7, body: "#!/bin/sh\necho hi\n"},
		"app/data.bin":       {typ: tar.TypeReg, mode: 0o600, body: big},
		"app/empty":          {typ: tar.TypeReg, mode: 0o644},
		"app/link":           {typ: tar.TypeSymlink, mode: 0o777, target: "bin/run"},
		"app/abs":            {typ: tar.TypeSymlink, mode: 0o777, target: "/etc/passwd"},
		"app/ro/":            {typ: tar.TypeDir, mode: 0o555},
		"app/ro/inside":      {typ: tar.TypeReg, mode: 0o444, body: "ro"},
		"app/setuid":         {typ: tar.TypeReg, mode: 0o4755, body: "s"},
		"app/../../escape":   {typ: tar.TypeReg, mode: 0o644, body: "must not land outside"},
		"/app/absolute-name": {typ: tar.TypeReg, mode: 0o644, body: "abs"},
	}
	var entries []tarEntryNamed
	for _, n := range order {
		entries = append(entries, tarEntryNamed{n, in[n]})
	}
	res, err := s.TarIn(ctx, "/opt/dest", tarOf(t, entries))
	if err != nil {
		t.Fatalf("TarIn: %v", err)
	}
	if res.Files != 8 || res.Bytes != int64(len(big)+len("#!/bin/sh\necho hi\n")+len("ro")+len("s")+len("abs")) {
		t.Errorf("TarIn result %+v", res)
	}
	// "app/../../escape" cleans to "../escape": skipped, not written
	// next to /opt/dest or outside the root.
	mustNotExist(t, filepath.Join(root, "opt/escape"))
	mustNotExist(t, filepath.Join(root, "escape"))
	mustNotExist(t, filepath.Join(filepath.Dir(root), "escape"))
	if got := readHost(t, filepath.Join(root, "opt/dest/app/absolute-name")); got != "abs" {
		t.Errorf("absolute entry name: %q", got)
	}
	if fi, err := os.Lstat(filepath.Join(root, "opt/dest/app/ro")); err != nil || fi.Mode() != fs.ModeDir|0o555 {
		t.Errorf("read-only dir: %v, %v", fi, err)
	}
	if fi, err := os.Stat(filepath.Join(root, "opt/dest/app/bin/run")); err != nil || fi.Sys().(*syscall.Stat_t).Uid != 7 {
		t.Errorf("owner of run: %v", err)
	}
	for _, p := range []string{"opt/dest/app/bin/run", "opt/dest/app/empty", "opt/dest/app/ro"} {
		if fi, err := os.Lstat(filepath.Join(root, p)); err != nil || fi.ModTime().Unix() != 1_600_000_000 {
			t.Errorf("mtime of %s: %v, %v", p, fi.ModTime(), err)
		}
	}

	var out bytes.Buffer
	res2, err := s.TarOut(ctx, "/opt/dest/app", &out)
	if err != nil {
		t.Fatalf("TarOut: %v", err)
	}
	if res2.Files != res.Files || res2.Bytes != res.Bytes {
		t.Errorf("TarOut result %+v, TarIn result %+v", res2, res)
	}
	got := readTar(t, &out)
	want := map[string]tarEntry{}
	for n, e := range in {
		if strings.Contains(n, "..") {
			continue
		}
		want[strings.TrimPrefix(n, "/")] = e
	}
	if len(got) != len(want) {
		t.Errorf("TarOut has %d entries, want %d: %v", len(got), len(want), keys(got))
	}
	for n, w := range want {
		g, ok := got[n]
		if !ok {
			t.Errorf("TarOut lacks %s", n)
			continue
		}
		if g.typ != w.typ || g.mode != w.mode || g.uid != w.uid || g.body != w.body || g.target != w.target {
			t.Errorf("%s: got type %c mode %o uid %d target %q body %d bytes; want type %c mode %o uid %d target %q body %d bytes",
				n, g.typ, g.mode, g.uid, g.target, len(g.body), w.typ, w.mode, w.uid, w.target, len(w.body))
		}
	}

	// A single file comes out under its base name.
	out.Reset()
	if _, err := s.TarOut(ctx, "/opt/dest/app/bin/run", &out); err != nil {
		t.Fatal(err)
	}
	if got := readTar(t, &out); len(got) != 1 || got["run"].body != in["app/bin/run"].body {
		t.Errorf("single-file TarOut: %v", got)
	}
	// A second copy replaces the files (same inode number not required,
	// content and mode are).
	if err := os.WriteFile(filepath.Join(root, "opt/dest/app/empty"), []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	again := tarOf(t, []tarEntryNamed{{"app/empty", tarEntry{typ: tar.TypeReg, mode: 0o640, body: "new"}}})
	if _, err := s.TarIn(ctx, "/opt/dest", again); err != nil {
		t.Fatalf("TarIn over an existing file: %v", err)
	}
	if fi, err := os.Lstat(filepath.Join(root, "opt/dest/app/empty")); err != nil || fi.Mode() != 0o640 || readHost(t, filepath.Join(root, "opt/dest/app/empty")) != "new" {
		t.Errorf("replaced file: %v, %v", fi, err)
	}
}

func keys(m map[string]tarEntry) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	sort.Strings(k)
	return k
}

// The image is hostile: its symlinks and the host's ".." must resolve
// inside the root, as under chroot, never on the host.
func TestPipeHostileImage(t *testing.T) {
	s, root, _ := pipeSession(t)
	ctx := testCtx(t)
	outside := t.TempDir() // an absolute host path outside the root
	secret := filepath.Join(outside, "secret")
	if err := os.WriteFile(secret, []byte("host secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	// root/etc -> /tmp/.../outside, an absolute link out of the image.
	if err := os.Symlink(outside, filepath.Join(root, "etc")); err != nil {
		t.Fatal(err)
	}
	// root/up -> ../../.. climbs above the root.
	if err := os.Symlink("../../../..", filepath.Join(root, "up")); err != nil {
		t.Fatal(err)
	}
	// root/secretlink -> the host file.
	if err := os.Symlink(secret, filepath.Join(root, "secretlink")); err != nil {
		t.Fatal(err)
	}
	// root/dot -> /, the image's own root.
	if err := os.Symlink("/", filepath.Join(root, "dot")); err != nil {
		t.Fatal(err)
	}

	t.Run("write through absolute symlink", func(t *testing.T) {
		_, err := s.WriteFile(ctx, proto.WriteArgs{Path: "/etc/x"}, strings.NewReader("pwned"))
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("WriteFile(/etc/x) = %v, want fs.ErrNotExist (the link target does not exist in the image)", err)
		}
		mustNotExist(t, filepath.Join(outside, "x"))
		// Once the target exists inside the image, the write lands there.
		if err := os.MkdirAll(filepath.Join(root, outside), 0o755); err != nil {
			t.Fatal(err)
		}
		writeString(t, s, proto.WriteArgs{Path: "/etc/x"}, "inside")
		mustNotExist(t, filepath.Join(outside, "x"))
		if got := readHost(t, filepath.Join(root, outside, "x")); got != "inside" {
			t.Errorf("in-root target has %q", got)
		}
	})
	t.Run("dotdot in the path", func(t *testing.T) {
		writeString(t, s, proto.WriteArgs{Path: "/../../../../dotdot"}, "x")
		mustNotExist(t, filepath.Join(filepath.Dir(root), "dotdot"))
		if got := readHost(t, filepath.Join(root, "dotdot")); got != "x" {
			t.Errorf("root/dotdot has %q", got)
		}
		writeString(t, s, proto.WriteArgs{Path: "/dot/../../viadot"}, "y")
		mustNotExist(t, filepath.Join(filepath.Dir(root), "viadot"))
		if got := readHost(t, filepath.Join(root, "viadot")); got != "y" {
			t.Errorf("root/viadot has %q", got)
		}
	})
	t.Run("dotdot symlink", func(t *testing.T) {
		writeString(t, s, proto.WriteArgs{Path: "/up/climbed"}, "z")
		mustNotExist(t, filepath.Join(filepath.Dir(root), "climbed"))
		mustNotExist(t, "/climbed")
		if got := readHost(t, filepath.Join(root, "climbed")); got != "z" {
			t.Errorf("root/climbed has %q", got)
		}
		if _, err := s.Mkdir(ctx, "/up/up/newdir", nil, "", true); err != nil {
			t.Fatal(err)
		}
		mustNotExist(t, filepath.Join(filepath.Dir(root), "newdir"))
		if fi, err := os.Stat(filepath.Join(root, "newdir")); err != nil || !fi.IsDir() {
			t.Errorf("root/newdir: %v", err)
		}
	})
	t.Run("read through symlink", func(t *testing.T) {
		var buf bytes.Buffer
		_, err := s.ReadFile(ctx, "/secretlink", &buf)
		if !errors.Is(err, fs.ErrNotExist) || buf.Len() != 0 {
			t.Errorf("ReadFile(/secretlink) = %q, %v; want fs.ErrNotExist", buf.String(), err)
		}
		if _, err := s.ReadFile(ctx, "/etc/secret", &buf); !errors.Is(err, fs.ErrNotExist) || buf.Len() != 0 {
			t.Errorf("ReadFile(/etc/secret) = %q, %v; want fs.ErrNotExist", buf.String(), err)
		}
		if _, err := s.TarOut(ctx, "/up", &buf); err != nil {
			t.Errorf("TarOut(/up) = %v", err)
		} else if strings.Contains(buf.String(), "host secret") {
			t.Error("TarOut followed a link out of the image")
		}
	})
	t.Run("stat does not follow", func(t *testing.T) {
		st, err := s.Stat(ctx, "/etc")
		if err != nil || fs.FileMode(st.Mode)&fs.ModeSymlink == 0 || st.Target != outside {
			t.Errorf("Stat(/etc) = %+v, %v", st, err)
		}
		if st, err := s.Stat(ctx, "/secretlink/x"); err == nil && st.Exists {
			t.Errorf("Stat through a link to a host file: %+v", st)
		}
	})
	t.Run("overwrite a symlink", func(t *testing.T) {
		// The final component is replaced, not written through.
		writeString(t, s, proto.WriteArgs{Path: "/secretlink"}, "replaced")
		if got := readHost(t, secret); got != "host secret" {
			t.Errorf("host file now %q", got)
		}
		if fi, err := os.Lstat(filepath.Join(root, "secretlink")); err != nil || !fi.Mode().IsRegular() {
			t.Errorf("secretlink after write: %v, %v", fi, err)
		}
	})
	t.Run("delete through symlink", func(t *testing.T) {
		if _, err := s.Delete(ctx, "/etc/secret", false); err != nil {
			t.Errorf("Delete(/etc/secret) = %v", err)
		}
		if _, err := os.Stat(secret); err != nil {
			t.Errorf("host file deleted: %v", err)
		}
	})
	t.Run("tar through symlink", func(t *testing.T) {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		// A link to the host dir, then a file through it.
		_ = tw.WriteHeader(&tar.Header{Name: "hop", Typeflag: tar.TypeSymlink, Linkname: outside})
		_ = tw.WriteHeader(&tar.Header{Name: "hop/tarred", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1})
		_, _ = tw.Write([]byte("t"))
		_ = tw.Close()
		_, err := s.TarIn(ctx, "/tardest", &buf)
		t.Logf("TarIn through a link: %v", err)
		mustNotExist(t, filepath.Join(outside, "tarred"))
		if err == nil {
			if got := readHost(t, filepath.Join(root, outside, "tarred")); got != "t" {
				t.Errorf("in-root target has %q", got)
			}
		}
		// Extracting into a destination that is a link out of the image.
		buf.Reset()
		tw = tar.NewWriter(&buf)
		_ = tw.WriteHeader(&tar.Header{Name: "f", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1})
		_, _ = tw.Write([]byte("f"))
		_ = tw.Close()
		if _, err := s.TarIn(ctx, "/etc/sub", &buf); err != nil {
			t.Fatalf("TarIn(/etc/sub): %v", err)
		}
		mustNotExist(t, filepath.Join(outside, "sub"))
		if got := readHost(t, filepath.Join(root, outside, "sub/f")); got != "f" {
			t.Errorf("in-root target has %q", got)
		}
	})
	if got := readHost(t, secret); got != "host secret" {
		t.Errorf("host file changed: %q", got)
	}
	ents, _ := os.ReadDir(outside)
	if len(ents) != 1 {
		t.Errorf("host directory outside the root has %d entries, want only the secret", len(ents))
	}
}

func TestPipeConcurrentCalls(t *testing.T) {
	s, root, _ := pipeSession(t)
	ctx := testCtx(t)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			content := bytes.Repeat([]byte{byte('a' + i)}, (i+1)*100_000)
			p := "/f" + string(rune('a'+i))
			if _, err := s.WriteFile(ctx, proto.WriteArgs{Path: p}, bytes.NewReader(content)); err != nil {
				errs <- err
				return
			}
			var out bytes.Buffer
			if _, err := s.ReadFile(ctx, p, &out); err != nil {
				errs <- err
				return
			}
			if !bytes.Equal(out.Bytes(), content) {
				errs <- errors.New(p + ": content differs")
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if ents, _ := os.ReadDir(root); len(ents) != 16 {
		t.Errorf("%d files in root, want 16", len(ents))
	}
}

// stalledWrite starts a WriteFile whose input never ends, waits until the
// agent is inside it (its temporary file exists in root), and returns the
// call's outcome channel.
func stalledWrite(t *testing.T, s *appliance.Session, ctx context.Context, root string) <-chan error {
	t.Helper()
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.CloseWithError(errors.New("test over")) })
	// Send some data so the agent is inside the write.
	go func() { _, _ = pw.Write([]byte("partial")) }()
	done := make(chan error, 1)
	go func() {
		_, err := s.WriteFile(ctx, proto.WriteArgs{Path: "/pending"}, pr)
		done <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		select {
		case err := <-done:
			t.Fatalf("stalled WriteFile returned early: %v", err)
		default:
		}
		if m, _ := filepath.Glob(filepath.Join(root, ".imgbake-*-pending")); len(m) > 0 {
			return done
		}
		if time.Now().After(deadline) {
			t.Fatal("the agent never started the stalled write")
		}
		time.Sleep(time.Millisecond)
	}
}

// noTempLeft checks that an abandoned write removes its temporary file.
func noTempLeft(t *testing.T, root string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		m, _ := filepath.Glob(filepath.Join(root, ".imgbake-*"))
		if len(m) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("temporary files left in the image: %v", m)
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitErr(t *testing.T, done <-chan error, within time.Duration) error {
	t.Helper()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("pending call succeeded")
		}
		return err
	case <-time.After(within):
		t.Fatalf("pending call still blocked after %s", within)
	}
	return nil
}

func TestPipeKillFailsPendingCalls(t *testing.T) {
	s, root, m := pipeSession(t)
	ctx := testCtx(t)
	done := stalledWrite(t, s, ctx, root)
	start := time.Now()
	s.Kill()
	err := waitErr(t, done, time.Second)
	t.Logf("pending call after Kill (%s): %v", time.Since(start).Round(time.Millisecond), err)
	if !errors.Is(err, appliance.ErrApplianceDied) {
		t.Errorf("err = %v, want ErrApplianceDied", err)
	}
	if !errors.Is(m.Err(), appliancetest.ErrKilled) {
		t.Errorf("machine err = %v", m.Err())
	}
	if _, err := s.Hello(ctx); err == nil {
		t.Error("Hello after Kill succeeded")
	}
	mustNotExist(t, filepath.Join(root, "pending"))
	noTempLeft(t, root)
}

func TestPipeCloseFailsPendingCalls(t *testing.T) {
	s, root, _ := pipeSession(t)
	ctx := testCtx(t)
	done := stalledWrite(t, s, ctx, root)
	closed := make(chan error, 1)
	go func() { closed <- s.Close(ctx) }()
	err := waitErr(t, done, 2*time.Second)
	t.Logf("pending call after Close: %v", err)
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close blocked")
	}
	mustNotExist(t, filepath.Join(root, "pending"))
	noTempLeft(t, root)
}

func TestPipeAgentCrashFailsPendingCalls(t *testing.T) {
	s, root, m := pipeSession(t)
	ctx := testCtx(t)
	done := stalledWrite(t, s, ctx, root)
	m.Crash()
	err := waitErr(t, done, time.Second)
	if !errors.Is(err, appliance.ErrApplianceDied) {
		t.Errorf("err = %v, want ErrApplianceDied", err)
	}
	if _, err := s.Hello(ctx); !errors.Is(err, appliance.ErrApplianceDied) {
		t.Errorf("Hello after the crash = %v, want ErrApplianceDied", err)
	}
	if err := s.Close(ctx); err == nil {
		t.Error("Close after a crash reported success")
	}
	noTempLeft(t, root)
}

// The channel fails but the "VM" lives on: the session gives up on the
// channel after its grace period instead of waiting forever.
func TestPipeHangUpFailsPendingCalls(t *testing.T) {
	s, root, m := pipeSession(t)
	ctx := testCtx(t)
	done := stalledWrite(t, s, ctx, root)
	hello := make(chan error, 1)
	m.HangUp()
	go func() { _, err := s.Hello(ctx); hello <- err }()
	err := waitErr(t, done, 4*time.Second)
	t.Logf("pending call after hang-up: %v", err)
	if err := waitErr(t, hello, 4*time.Second); err == nil {
		t.Error("Hello on a hung-up channel succeeded")
	}
	select {
	case <-s.Done():
		t.Error("machine reported done before Kill")
	default:
	}
	s.Kill()
	<-s.Done()
	noTempLeft(t, root)
}

func TestPipeStartFailures(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	ctx := testCtx(t)
	b := appliancetest.New(filepath.Join(t.TempDir(), "missing"))
	if _, err := appliance.Start(ctx, appliancetest.Appliance(), appliance.WithBackend(b)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Start on a missing root = %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	b = appliancetest.New(t.TempDir())
	if _, err := appliance.Start(cctx, appliancetest.Appliance(), appliance.WithBackend(b)); !errors.Is(err, context.Canceled) {
		t.Errorf("Start with a cancelled context = %v", err)
	}
}

// A call whose context ends while the agent waits for its input returns
// promptly, and the write is abandoned: no temporary file stays in the
// image and data arriving later does not complete it.
func TestPipeCancelPendingWrite(t *testing.T) {
	s, root, _ := pipeSession(t)
	pr, pw := io.Pipe()
	defer pw.Close()
	go func() { _, _ = pw.Write([]byte("partial")) }()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := s.WriteFile(ctx, proto.WriteArgs{Path: "/pending"}, pr)
		done <- err
	}()
	err := waitErr(t, done, 2*time.Second)
	t.Logf("cancelled write returned after %s: %v", time.Since(start).Round(time.Millisecond), err)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want context.DeadlineExceeded", err)
	}
	// The caller's reader now delivers the rest and ends.
	_, _ = pw.Write([]byte(" and the rest"))
	pw.Close()
	tctx := testCtx(t)
	if _, err := s.Hello(tctx); err != nil {
		t.Fatalf("session unusable after a cancelled call: %v", err)
	}
	time.Sleep(100 * time.Millisecond)
	ents, _ := os.ReadDir(root)
	for _, e := range ents {
		t.Errorf("left in the image: %s", e.Name())
	}
}

// TestPipeWriteSizes: content sent with its call (up to one chunk) and
// content streamed after it (over a chunk) arrive whole, empty files too.
func TestPipeWriteSizes(t *testing.T) {
	s, root, _ := pipeSession(t)
	for _, n := range []int{0, 1, proto.ChunkSize - 1, proto.ChunkSize, proto.ChunkSize + 1, 3*proto.ChunkSize + 7} {
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(i*7 + n)
		}
		p := fmt.Sprintf("/f%d", n)
		if _, err := s.WriteFile(testCtx(t), proto.WriteArgs{Path: p}, bytes.NewReader(data)); err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		got, err := os.ReadFile(filepath.Join(root, p))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%d bytes: read back %d bytes, equal %v, %v", n, len(got), bytes.Equal(got, data), err)
		}
	}
}
