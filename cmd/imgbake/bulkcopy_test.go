package main

import (
	"crypto/rand"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imgbake/imgbake/testimages"
)

// bulkTree makes a host tree that copy-in sends by the data disk: a file
// over the 4 MiB staging size, an unaligned one, and enough small files
// (modes the umask keeps and modes it does not, setuid, a symlink) for
// the whole stream to be staged.
func bulkTree(t *testing.T, dir string) {
	t.Helper()
	write := func(rel string, data []byte, mode fs.FileMode) {
		p := filepath.Join(dir, rel)
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		must(t, os.WriteFile(p, data, mode))
		must(t, os.Chmod(p, mode)) // past the test's umask
	}
	random := func(n int) []byte {
		b := make([]byte, n)
		_, _ = rand.Read(b)
		return b
	}
	write("big.bin", random(9<<20+123), 0o644)
	write("odd.bin", random(5<<20+1), 0o600)
	modes := []fs.FileMode{0o644, 0o755, 0o600, 0o666, 0o4755, 0o640}
	for i := range 600 {
		write(fmt.Sprintf("src/d%02d/f%03d.txt", i%20, i), []byte(strings.Repeat(fmt.Sprintf("line %d\n", i), i%50)), modes[i%len(modes)])
	}
	must(t, os.Symlink("../big.bin", filepath.Join(dir, "src", "link")))
	old := time.Unix(1_500_000_000, 0)
	must(t, os.Chtimes(filepath.Join(dir, "big.bin"), old, old))
	must(t, os.Chmod(filepath.Join(dir, "src", "d07"), 0o750))
	// Directories last (writing into one changes its time): the copy goes
	// in parts, and a directory's time must survive the parts after it.
	must(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			err = os.Chtimes(p, bulkDirTime, bulkDirTime)
		}
		return err
	}))
}

var bulkDirTime = time.Unix(1_400_000_000, 0)

// sameTree compares two host trees: content, mode, symlinks and mtimes
// (whole seconds, as copy-in keeps them).
func sameTree(t *testing.T, want, got string) {
	t.Helper()
	n := 0
	err := filepath.WalkDir(want, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(want, p)
		wi, _ := os.Lstat(p)
		gi, err := os.Lstat(filepath.Join(got, rel))
		if err != nil {
			t.Errorf("%s: missing: %v", rel, err)
			return nil
		}
		n++
		if wi.Mode() != gi.Mode() {
			t.Errorf("%s: mode %v, want %v", rel, gi.Mode(), wi.Mode())
		}
		switch {
		case wi.Mode()&fs.ModeSymlink != 0:
			wl, _ := os.Readlink(p)
			gl, _ := os.Readlink(filepath.Join(got, rel))
			if wl != gl {
				t.Errorf("%s: link %q, want %q", rel, gl, wl)
			}
		case wi.Mode().IsRegular():
			if sha256File(t, p) != sha256File(t, filepath.Join(got, rel)) {
				t.Errorf("%s: content differs", rel)
			}
			if !gi.ModTime().Equal(wi.ModTime().Truncate(time.Second)) {
				t.Errorf("%s: mtime %v, want %v", rel, gi.ModTime(), wi.ModTime())
			}
		}
		return nil
	})
	must(t, err)
	if n < 600 {
		t.Errorf("compared only %d entries", n)
	}
}

// TestBulkCopyIn: trees and large files go by the data disk (one
// hot-plug, reused by later copies of the session), arrive intact, and a
// small copy still goes by the channel; verified by copying back out and
// with debugfs.
func TestBulkCopyIn(t *testing.T) {
	_, base := sessionTest(t)
	disk := testimages.Fresh(t, testimages.NoPart)
	host := t.TempDir()
	src := filepath.Join(host, "payload")
	bulkTree(t, src)
	must(t, os.WriteFile(filepath.Join(host, "small.conf"), []byte("small\n"), 0o644))

	r := imgbake(t, "session", "start", "--name", "bulk", "-a", disk)
	if r.code != 0 {
		t.Fatalf("session start: %s", r)
	}
	for _, args := range [][]string{
		{src, "/opt"},
		{filepath.Join(src, "big.bin"), "/root"},
		{filepath.Join(host, "small.conf"), "/etc"},
	} {
		if r := imgbake(t, append([]string{"session", "put", "bulk"}, args...)...); r.code != 0 {
			t.Fatalf("put %v: %s", args, r)
		}
	}
	// Every directory kept its time, in the image (copy-out does not set
	// directory times on the host).
	r = imgbake(t, "session", "exec", "bulk", "--", "sh", "-c", "find /opt/payload -type d -exec stat -c '%Y %n' {} +")
	if r.code != 0 {
		t.Fatalf("stat directories: %s", r)
	}
	dirs := strings.Split(strings.TrimSpace(r.stdout), "\n")
	for _, l := range dirs {
		if !strings.HasPrefix(l, fmt.Sprint(bulkDirTime.Unix())+" ") {
			t.Errorf("directory time in the image: %q, want %d", l, bulkDirTime.Unix())
		}
	}
	if len(dirs) != 22 {
		t.Errorf("%d directories in the image, want 22:\n%s", len(dirs), r.stdout)
	}
	out := filepath.Join(host, "out")
	if r := imgbake(t, "session", "fetch", "bulk", "/opt/payload", out); r.code != 0 {
		t.Fatalf("fetch: %s", r)
	}
	if r := imgbake(t, "session", "stop", "bulk"); r.code != 0 {
		t.Fatalf("stop: %s", r)
	}
	sameTree(t, src, filepath.Join(out, "payload"))

	files, err := testimages.ReadFiles(t, disk, "raw", 0, "/root/big.bin", "/etc/small.conf", "/opt/payload/src/d03/f003.txt")
	if err != nil {
		t.Fatal(err)
	}
	big, _ := os.ReadFile(filepath.Join(src, "big.bin"))
	if string(files["/root/big.bin"]) != string(big) {
		t.Errorf("/root/big.bin differs in the image (%d bytes, want %d)", len(files["/root/big.bin"]), len(big))
	}
	if string(files["/etc/small.conf"]) != "small\n" || string(files["/opt/payload/src/d03/f003.txt"]) != strings.Repeat("line 3\n", 3) {
		t.Errorf("small files: %q, %q", files["/etc/small.conf"], files["/opt/payload/src/d03/f003.txt"])
	}
	// After a cold boot (QMP attaches in the background) too.
	t.Setenv("IMGBAKE_COLD", "1")
	if r := imgbake(t, "copy-in", "-v", "-a", disk, filepath.Join(src, "odd.bin"), "/srv"); r.code != 0 || !strings.Contains(r.stderr, "cold boot") || !strings.Contains(r.stderr, "data disk for bulk copies attached") {
		t.Fatalf("copy-in after a cold boot: %s", r)
	}
	files, err = testimages.ReadFiles(t, disk, "raw", 0, "/srv/odd.bin")
	if err != nil {
		t.Fatal(err)
	}
	if odd, _ := os.ReadFile(filepath.Join(src, "odd.bin")); string(files["/srv/odd.bin"]) != string(odd) {
		t.Errorf("/srv/odd.bin differs after a cold-boot copy-in")
	}

	// With the data disk disabled the same copies go through the channel.
	t.Setenv("IMGBAKE_COLD", "")
	t.Setenv("IMGBAKE_DATA_DISK", "0")
	disk2 := testimages.Fresh(t, testimages.NoPart)
	r = imgbake(t, "copy-in", "-v", "-a", disk2, src, filepath.Join(src, "big.bin"), "/opt")
	if r.code != 0 || strings.Contains(r.stderr, "data disk for bulk copies attached") {
		t.Fatalf("copy-in without the data disk: %s", r)
	}
	out2 := filepath.Join(host, "out2")
	must(t, os.MkdirAll(out2, 0o755))
	if r := imgbake(t, "copy-out", "-a", disk2, "/opt/payload", out2); r.code != 0 {
		t.Fatalf("copy-out: %s", r)
	}
	sameTree(t, src, filepath.Join(out2, "payload"))

	// One hot-plug for the session; the tree and big.bin went by it.
	log, err := os.ReadFile(filepath.Join(base, "bulk.log"))
	must(t, err)
	if n := strings.Count(string(log), "data disk for bulk copies attached"); n != 1 {
		t.Errorf("data disk attached %d times, want once:\n%s", n, log)
	}
	if !strings.Contains(string(log), "staged a") {
		t.Errorf("the tree was not staged on the data disk:\n%s", log)
	}
}
