package appliance_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imgbake/imgbake/appliance"
)

// Tests of the file metadata operations (chmod, chown, rename, symlink,
// truncate, realpath) on the in-process agent, including images whose
// symlinks try to lead out of the root.

// hostileRoot is a pipe session whose image has links out of the root:
// /out -> an absolute host directory holding "secret" (0600, 4321:4321),
// /up -> ../../../.., and /secretlink -> the host file itself.
func hostileRoot(t *testing.T) (s *appliance.Session, root, outside, secret string) {
	t.Helper()
	s, root, _ = pipeSession(t)
	outside = t.TempDir()
	secret = filepath.Join(outside, "secret")
	must(t, os.WriteFile(secret, []byte("host secret"), 0o600))
	must(t, os.Chown(secret, 4321, 4321))
	must(t, os.Symlink(outside, filepath.Join(root, "out")))
	must(t, os.Symlink("../../../..", filepath.Join(root, "up")))
	must(t, os.Symlink(secret, filepath.Join(root, "secretlink")))
	t.Cleanup(func() { secretIntact(t, secret) })
	return s, root, outside, secret
}

// secretIntact checks the host file outside the root was not touched.
func secretIntact(t *testing.T, secret string) {
	t.Helper()
	fi, err := os.Stat(secret)
	if err != nil {
		t.Fatalf("host file outside the root: %v", err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode() != 0o600 || st.Uid != 4321 || st.Gid != 4321 || fi.Size() != int64(len("host secret")) {
		t.Errorf("host file outside the root changed: mode %v owner %d:%d size %d", fi.Mode(), st.Uid, st.Gid, fi.Size())
	}
	ents, _ := os.ReadDir(filepath.Dir(secret))
	if len(ents) != 1 {
		t.Errorf("host directory outside the root has %d entries, want only the secret", len(ents))
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func hostStat(t *testing.T, p string) (fs.FileMode, uint32, uint32, *syscall.Stat_t) {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return fi.Mode(), st.Uid, st.Gid, st
}

func TestPipeChmod(t *testing.T) {
	s, root, _, _ := hostileRoot(t)
	ctx := testCtx(t)
	f := filepath.Join(root, "f")
	must(t, os.WriteFile(f, []byte("x"), 0o644))
	for _, step := range []struct {
		mode    uint32
		changed bool
		want    fs.FileMode
	}{
		{0o600, true, 0o600},
		{0o600, false, 0o600},
		{0o4755, true, fs.ModeSetuid | 0o755},
		{0o4755, false, fs.ModeSetuid | 0o755},
		{0o1777, true, fs.ModeSticky | 0o777},
	} {
		changed, err := s.Chmod(ctx, "/f", step.mode)
		if err != nil || changed != step.changed {
			t.Errorf("Chmod(/f, %o) = %v, %v; want changed=%v", step.mode, changed, err, step.changed)
		}
		if m, _, _, _ := hostStat(t, f); m != step.want {
			t.Errorf("after Chmod(%o): mode %v, want %v", step.mode, m, step.want)
		}
	}
	// A symlink inside the image is followed to its target.
	must(t, os.Symlink("f", filepath.Join(root, "flink")))
	if changed, err := s.Chmod(ctx, "/flink", 0o640); err != nil || !changed {
		t.Errorf("Chmod through an in-image link = %v, %v", changed, err)
	}
	if m, _, _, _ := hostStat(t, f); m != 0o640 {
		t.Errorf("link target mode %v, want 0640", m)
	}
	// Directories work too.
	must(t, os.Mkdir(filepath.Join(root, "d"), 0o755))
	if changed, err := s.Chmod(ctx, "/d", 0o2750); err != nil || !changed {
		t.Errorf("Chmod(/d) = %v, %v", changed, err)
	}
	if m, _, _, _ := hostStat(t, filepath.Join(root, "d")); m != fs.ModeDir|fs.ModeSetgid|0o750 {
		t.Errorf("dir mode %v", m)
	}
	// Links out of the image resolve inside it, where nothing exists.
	for _, p := range []string{"/secretlink", "/out/secret", "/up/secret", "/up/up/" + "secret"} {
		if _, err := s.Chmod(ctx, p, 0o777); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Chmod(%s) = %v, want fs.ErrNotExist", p, err)
		}
	}
	if _, err := s.Chmod(ctx, "/missing", 0o644); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Chmod(/missing) = %v, want fs.ErrNotExist", err)
	}
	if _, err := s.Chmod(ctx, "/f", 0o10000); err == nil {
		t.Error("a mode beyond 07777 was accepted")
	}
	if _, err := s.Chmod(ctx, "f", 0o644); err == nil {
		t.Error("relative path accepted")
	}
	// A FIFO is changed without being opened (which would block).
	must(t, syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644))
	if changed, err := s.Chmod(ctx, "/fifo", 0o600); err != nil || !changed {
		t.Errorf("Chmod(/fifo) = %v, %v", changed, err)
	}
}

func TestPipeChown(t *testing.T) {
	s, root, _, _ := hostileRoot(t)
	ctx := testCtx(t)
	must(t, os.Mkdir(filepath.Join(root, "etc"), 0o755))
	must(t, os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0::/root:/bin/sh\napp:x:1500:1600::/srv:/bin/sh\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(root, "etc/group"), []byte("root:x:0:\nstaff:x:50:\n"), 0o644))
	f := filepath.Join(root, "f")
	must(t, os.WriteFile(f, []byte("x"), 0o644))
	must(t, os.Chown(f, 0, 0))
	for _, step := range []struct {
		owner    string
		changed  bool
		uid, gid uint32
	}{
		{"0:0", false, 0, 0},
		{"root", false, 0, 0},
		{"app", true, 1500, 1600}, // a user alone gets the user's primary group
		{"app", false, 1500, 1600},
		{"app:staff", true, 1500, 50},
		{"1234:2345", true, 1234, 2345},
		{"1234:2345", false, 1234, 2345},
	} {
		changed, err := s.Chown(ctx, "/f", step.owner)
		if err != nil || changed != step.changed {
			t.Errorf("Chown(/f, %s) = %v, %v; want changed=%v", step.owner, changed, err, step.changed)
		}
		if _, uid, gid, _ := hostStat(t, f); uid != step.uid || gid != step.gid {
			t.Errorf("after Chown(%s): %d:%d, want %d:%d", step.owner, uid, gid, step.uid, step.gid)
		}
	}
	// Setuid survives a chown (the kernel clears it; the agent restores it).
	must(t, os.Chmod(f, 0o755|fs.ModeSetuid|fs.ModeSetgid))
	if changed, err := s.Chown(ctx, "/f", "0:0"); err != nil || !changed {
		t.Errorf("Chown(/f, 0:0) = %v, %v", changed, err)
	}
	if m, uid, gid, _ := hostStat(t, f); m != fs.ModeSetuid|fs.ModeSetgid|0o755 || uid != 0 || gid != 0 {
		t.Errorf("after chown of a setuid file: %v %d:%d", m, uid, gid)
	}
	// Unknown names are errors naming the image's database.
	if _, err := s.Chown(ctx, "/f", "nobody-here"); err == nil || !strings.Contains(err.Error(), "/etc/passwd") {
		t.Errorf("Chown with an unknown user = %v", err)
	}
	if _, err := s.Chown(ctx, "/f", "app:nogroup"); err == nil || !strings.Contains(err.Error(), "/etc/group") {
		t.Errorf("Chown with an unknown group = %v", err)
	}
	// A link in the image is followed; links out of it resolve inside.
	must(t, os.Symlink("/f", filepath.Join(root, "flink")))
	if changed, err := s.Chown(ctx, "/flink", "77:88"); err != nil || !changed {
		t.Errorf("Chown(/flink) = %v, %v", changed, err)
	}
	if _, uid, gid, _ := hostStat(t, f); uid != 77 || gid != 88 {
		t.Errorf("link target owner %d:%d", uid, gid)
	}
	if _, uid, _, _ := hostStat(t, filepath.Join(root, "flink")); uid != 0 {
		t.Errorf("the link itself was chowned to %d", uid)
	}
	for _, p := range []string{"/secretlink", "/out/secret", "/up/secret"} {
		if _, err := s.Chown(ctx, p, "0:0"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Chown(%s) = %v, want fs.ErrNotExist", p, err)
		}
	}
}

func TestPipeRename(t *testing.T) {
	s, root, outside, secret := hostileRoot(t)
	ctx := testCtx(t)
	must(t, os.WriteFile(filepath.Join(root, "a"), []byte("A"), 0o640))
	must(t, os.Mkdir(filepath.Join(root, "dir"), 0o755))

	if changed, err := s.Rename(ctx, "/a", "/dir/b"); err != nil || !changed {
		t.Fatalf("Rename(/a, /dir/b) = %v, %v", changed, err)
	}
	mustNotExist(t, filepath.Join(root, "a"))
	if got := readHost(t, filepath.Join(root, "dir/b")); got != "A" {
		t.Errorf("/dir/b has %q", got)
	}
	// Done already: src gone, dest there.
	if changed, err := s.Rename(ctx, "/a", "/dir/b"); err != nil || changed {
		t.Errorf("second Rename = %v, %v; want unchanged", changed, err)
	}
	// Neither there: an error.
	if _, err := s.Rename(ctx, "/nothing", "/nowhere"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Rename of a missing file = %v, want fs.ErrNotExist", err)
	}
	// Same path: nothing to do.
	if changed, err := s.Rename(ctx, "/dir/b", "/dir/../dir/b"); err != nil || changed {
		t.Errorf("Rename onto itself = %v, %v", changed, err)
	}
	// Into itself: refused.
	if _, err := s.Rename(ctx, "/dir", "/dir/sub"); err == nil {
		t.Error("moving a directory into itself was accepted")
	}
	if _, err := s.Rename(ctx, "/", "/x"); err == nil {
		t.Error("moving / was accepted")
	}
	// A directory moves whole.
	if changed, err := s.Rename(ctx, "/dir", "/dir2"); err != nil || !changed {
		t.Errorf("Rename(/dir, /dir2) = %v, %v", changed, err)
	}
	if got := readHost(t, filepath.Join(root, "dir2/b")); got != "A" {
		t.Errorf("/dir2/b has %q", got)
	}
	// Renaming a link moves the link, not its target.
	if changed, err := s.Rename(ctx, "/secretlink", "/moved-link"); err != nil || !changed {
		t.Errorf("Rename(/secretlink) = %v, %v", changed, err)
	}
	if target, err := os.Readlink(filepath.Join(root, "moved-link")); err != nil || target != secret {
		t.Errorf("moved link: %q, %v", target, err)
	}
	// Destinations through links out of the image land inside it.
	must(t, os.WriteFile(filepath.Join(root, "c"), []byte("C"), 0o644))
	if _, err := s.Rename(ctx, "/c", "/out/c"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Rename into a link out of the image = %v, want fs.ErrNotExist", err)
	}
	if _, err := s.Rename(ctx, "/c", "/up/c"); err != nil {
		t.Errorf("Rename(/c, /up/c) = %v", err)
	}
	mustNotExist(t, filepath.Join(outside, "c"))
	mustNotExist(t, filepath.Join(filepath.Dir(root), "c"))
	if got := readHost(t, filepath.Join(root, "c")); got != "C" {
		t.Errorf("/up/c should be /c in the image: %q", got)
	}
	// Sources through links out of the image do not reach the host.
	if _, err := s.Rename(ctx, "/out/secret", "/stolen"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Rename of a host file = %v, want fs.ErrNotExist", err)
	}
	mustNotExist(t, filepath.Join(root, "stolen"))
	// A file does not replace a directory.
	must(t, os.Mkdir(filepath.Join(root, "adir"), 0o755))
	if _, err := s.Rename(ctx, "/c", "/adir"); !errors.Is(err, syscall.EISDIR) {
		t.Errorf("Rename of a file over a directory = %v, want EISDIR", err)
	}
}

func TestPipeSymlink(t *testing.T) {
	s, root, outside, secret := hostileRoot(t)
	ctx := testCtx(t)
	link := filepath.Join(root, "l")
	check := func(want string) {
		t.Helper()
		if got, err := os.Readlink(link); err != nil || got != want {
			t.Errorf("/l -> %q, %v; want %q", got, err, want)
		}
	}
	if changed, err := s.Symlink(ctx, "/usr/share/zoneinfo/UTC", "/l"); err != nil || !changed {
		t.Errorf("new link = %v, %v", changed, err)
	}
	check("/usr/share/zoneinfo/UTC")
	if changed, err := s.Symlink(ctx, "/usr/share/zoneinfo/UTC", "/l"); err != nil || changed {
		t.Errorf("same link again = %v, %v; want unchanged", changed, err)
	}
	if changed, err := s.Symlink(ctx, "../relative/target", "/l"); err != nil || !changed {
		t.Errorf("retargeted link = %v, %v", changed, err)
	}
	check("../relative/target")
	// A file is replaced; a directory is not.
	must(t, os.WriteFile(filepath.Join(root, "file"), []byte("x"), 0o644))
	if changed, err := s.Symlink(ctx, "l", "/file"); err != nil || !changed {
		t.Errorf("link over a file = %v, %v", changed, err)
	}
	if fi, err := os.Lstat(filepath.Join(root, "file")); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("/file is not a link: %v", err)
	}
	must(t, os.Mkdir(filepath.Join(root, "dir"), 0o755))
	if _, err := s.Symlink(ctx, "x", "/dir"); !errors.Is(err, syscall.EISDIR) {
		t.Errorf("link over a directory = %v, want EISDIR", err)
	}
	// Retargeting a link that points out of the image changes the link
	// only, never the host file it names.
	if changed, err := s.Symlink(ctx, "/etc/hosts", "/secretlink"); err != nil || !changed {
		t.Errorf("retarget /secretlink = %v, %v", changed, err)
	}
	if got := readHost(t, secret); got != "host secret" {
		t.Errorf("host file now %q", got)
	}
	// Parents through links out of the image resolve inside it.
	if _, err := s.Symlink(ctx, "x", "/out/newlink"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("link under a link out of the image = %v, want fs.ErrNotExist", err)
	}
	if _, err := s.Symlink(ctx, "x", "/up/climbed"); err != nil {
		t.Errorf("Symlink(/up/climbed) = %v", err)
	}
	mustNotExist(t, filepath.Join(outside, "newlink"))
	mustNotExist(t, filepath.Join(filepath.Dir(root), "climbed"))
	if _, err := os.Lstat(filepath.Join(root, "climbed")); err != nil {
		t.Errorf("/up/climbed should be /climbed in the image: %v", err)
	}
	for _, bad := range []string{"", "a\x00b"} {
		if _, err := s.Symlink(ctx, bad, "/bad"); err == nil {
			t.Errorf("target %q accepted", bad)
		}
	}
	if _, err := s.Symlink(ctx, "x", "/"); err == nil {
		t.Error("replacing / accepted")
	}
	noTempLeft(t, root)
}

func TestPipeTruncate(t *testing.T) {
	s, root, _, _ := hostileRoot(t)
	ctx := testCtx(t)
	f := filepath.Join(root, "log")
	must(t, os.WriteFile(f, []byte("lots of log lines\n"), 0o640))
	must(t, os.Chown(f, 12, 34))
	_, _, _, before := hostStat(t, f)
	if changed, err := s.Truncate(ctx, "/log", false); err != nil || !changed {
		t.Errorf("Truncate = %v, %v", changed, err)
	}
	m, uid, gid, after := hostStat(t, f)
	if after.Size != 0 || m != 0o640 || uid != 12 || gid != 34 || after.Ino != before.Ino {
		t.Errorf("after truncate: size %d mode %v owner %d:%d inode %d (was %d); want 0 0640 12:34, same inode", after.Size, m, uid, gid, after.Ino, before.Ino)
	}
	if changed, err := s.Truncate(ctx, "/log", true); err != nil || changed {
		t.Errorf("Truncate of an empty file = %v, %v; want unchanged", changed, err)
	}
	// Missing: an error, or created with create.
	if _, err := s.Truncate(ctx, "/new", false); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Truncate(/new) without create = %v", err)
	}
	if changed, err := s.Truncate(ctx, "/new", true); err != nil || !changed {
		t.Errorf("Truncate(/new, create) = %v, %v", changed, err)
	}
	if m, _, _, st := hostStat(t, filepath.Join(root, "new")); m != 0o644 || st.Size != 0 {
		t.Errorf("created file: %v size %d", m, st.Size)
	}
	// Through a link in the image: the target is emptied, the link kept.
	must(t, os.WriteFile(filepath.Join(root, "target"), []byte("data"), 0o644))
	must(t, os.Symlink("target", filepath.Join(root, "tlink")))
	if changed, err := s.Truncate(ctx, "/tlink", true); err != nil || !changed {
		t.Errorf("Truncate(/tlink) = %v, %v", changed, err)
	}
	if got := readHost(t, filepath.Join(root, "target")); got != "" {
		t.Errorf("link target has %q", got)
	}
	// Links out of the image: never the host file, and never created
	// through a dangling link.
	for _, p := range []string{"/secretlink", "/out/secret"} {
		if _, err := s.Truncate(ctx, p, true); err == nil {
			t.Errorf("Truncate(%s) succeeded", p)
		}
	}
	mustNotExist(t, filepath.Join(root, "secret"))
	// /up climbs no higher than the image's root: /up/secret is /secret.
	if changed, err := s.Truncate(ctx, "/up/secret", true); err != nil || !changed {
		t.Errorf("Truncate(/up/secret) = %v, %v", changed, err)
	}
	if got := readHost(t, filepath.Join(root, "secret")); got != "" {
		t.Errorf("/secret in the image has %q", got)
	}
	// Not regular files: refused, without opening them.
	must(t, syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644))
	done := make(chan error, 1)
	go func() { _, err := s.Truncate(ctx, "/fifo", true); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("Truncate(/fifo) = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Truncate(/fifo) blocked: the FIFO was opened")
	}
	must(t, os.Mkdir(filepath.Join(root, "dir"), 0o755))
	if _, err := s.Truncate(ctx, "/dir", true); err == nil {
		t.Error("Truncate of a directory succeeded")
	}
}

func TestPipeRealpath(t *testing.T) {
	s, root, outside, _ := hostileRoot(t)
	ctx := testCtx(t)
	must(t, os.MkdirAll(filepath.Join(root, "etc/alt"), 0o755))
	must(t, os.MkdirAll(filepath.Join(root, "run"), 0o755))
	must(t, os.WriteFile(filepath.Join(root, "etc/alt/real.conf"), []byte("x"), 0o644))
	must(t, os.Symlink("alt/real.conf", filepath.Join(root, "etc/rel.conf")))
	must(t, os.Symlink("/etc/alt/real.conf", filepath.Join(root, "etc/abs.conf")))
	must(t, os.Symlink("../run/stub.conf", filepath.Join(root, "etc/resolv.conf"))) // dangling
	must(t, os.Symlink("loop2", filepath.Join(root, "loop1")))
	must(t, os.Symlink("loop1", filepath.Join(root, "loop2")))
	must(t, os.Symlink("/etc/alt", filepath.Join(root, "altdir")))
	for _, tt := range []struct {
		in, want string
		exists   bool
	}{
		{"/", "/", true},
		{"/etc/alt/real.conf", "/etc/alt/real.conf", true},
		{"/etc/rel.conf", "/etc/alt/real.conf", true},
		{"/etc/abs.conf", "/etc/alt/real.conf", true},
		{"/altdir/real.conf", "/etc/alt/real.conf", true},
		{"/altdir/new.conf", "/etc/alt/new.conf", false},
		{"/etc/resolv.conf", "/run/stub.conf", false},
		{"/etc/missing", "/etc/missing", false},
		{"/up/etc/rel.conf", "/etc/alt/real.conf", true},
	} {
		r, err := s.Realpath(ctx, tt.in)
		if err != nil || r.Path != tt.want || r.Exists != tt.exists {
			t.Errorf("Realpath(%s) = %+v, %v; want %s exists=%v", tt.in, r, err, tt.want, tt.exists)
		}
	}
	// Links out of the image name paths inside it, whose directories do
	// not exist there.
	for _, p := range []string{"/secretlink", "/out/secret"} {
		if r, err := s.Realpath(ctx, p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Realpath(%s) = %+v, %v; want fs.ErrNotExist", p, r, err)
		}
	}
	must(t, os.MkdirAll(filepath.Join(root, outside), 0o755))
	if r, err := s.Realpath(ctx, "/secretlink"); err != nil || r.Path != outside+"/secret" || r.Exists {
		t.Errorf("Realpath(/secretlink) = %+v, %v; want %s inside the image, missing", r, err, outside+"/secret")
	}
	if _, err := s.Realpath(ctx, "/loop1"); !errors.Is(err, syscall.ELOOP) {
		t.Errorf("Realpath of a loop = %v, want ELOOP", err)
	}
	if _, err := s.Realpath(ctx, "/nodir/file"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Realpath with a missing directory = %v", err)
	}
}
