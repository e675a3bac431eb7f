package appliance

import (
	"bytes"
	"os"
	"path"
	"strings"
	"testing"

	"github.com/imgbake/imgbake/appliance/proto"
	"github.com/imgbake/imgbake/internal/vmtest"
	"github.com/u-root/u-root/pkg/cpio"
)

// TestCollectRescue resolves the host's rescue tools and checks that every
// program's libraries and interpreter are in the set.
func TestCollectRescue(t *testing.T) {
	if _, err := os.Stat("/usr/sbin/e2fsck"); err != nil {
		vmtest.Missing(t, "no /usr/sbin/e2fsck on this host: install the Debian package e2fsprogs (%s)", vmtest.InstallDeps)
	}
	rs, err := collectRescue()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]cpio.Record{}
	for _, r := range rs.records {
		names["/"+r.Name] = r
	}
	if _, ok := names[proto.RescueBinDir+"/e2fsck"]; !ok {
		t.Fatalf("no e2fsck in %v", rs.info.Tools)
	}
	for _, lib := range []string{"libext2fs.so.2", "libc.so.6"} {
		if _, ok := names[proto.RescueLibDir+"/"+lib]; !ok {
			t.Errorf("%s missing; libs: %v", lib, rs.info.Libs)
		}
	}
	if l, ok := names[proto.RescueBinDir+"/fsck.ext4"]; !ok || l.Mode&cpio.S_IFMT != cpio.S_IFLNK {
		t.Errorf("fsck.ext4 link missing")
	}
	if _, ok := names["/bin/sh"]; !ok && len(rs.info.Missing) == 0 {
		t.Errorf("no /bin/sh for the rescue shell")
	}
	// The interpreter of e2fsck is reachable at its own path.
	interp, err := (&libResolver{found: map[string]string{}, dirs: map[string]bool{}}).resolve("/usr/sbin/e2fsck")
	if err != nil {
		t.Fatal(err)
	}
	if !reachable(names, interp) {
		t.Errorf("interpreter %s is not reachable in the initramfs", interp)
	}
	// Same host, same digest: the cache key is stable.
	rs2, err := collectRescue()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rs.digest, rs2.digest) {
		t.Error("rescue digest differs between two collections")
	}
	t.Logf("rescue: %d tools, %d libs, %d applets, %.1f MiB, missing %v", len(rs.info.Tools), len(rs.info.Libs), rs.info.Applets, float64(rs.info.Bytes)/(1<<20), rs.info.Missing)
}

// reachable follows symlinks (of directories too) through the records.
func reachable(names map[string]cpio.Record, p string) bool {
	for range 16 {
		if r, ok := names[p]; ok {
			if r.Mode&cpio.S_IFMT != cpio.S_IFLNK {
				return true
			}
			b := make([]byte, r.FileSize)
			_, _ = r.ReadAt(b, 0)
			p = path.Join(path.Dir(p), string(b))
			if strings.HasPrefix(string(b), "/") {
				p = string(b)
			}
			continue
		}
		found := false
		for d := path.Dir(p); d != "/"; d = path.Dir(d) {
			if r, ok := names[d]; ok && r.Mode&cpio.S_IFMT == cpio.S_IFLNK {
				b := make([]byte, r.FileSize)
				_, _ = r.ReadAt(b, 0)
				p = path.Join(string(b), strings.TrimPrefix(p, d+"/"))
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return false
}

func TestLdSoConfDirs(t *testing.T) {
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(dir+"/conf.d", 0o755))
	must(os.WriteFile(dir+"/ld.so.conf", []byte("# comment\ninclude conf.d/*.conf\n/opt/lib # trailing\n"), 0o644))
	must(os.WriteFile(dir+"/conf.d/a.conf", []byte("/usr/local/lib/x\n"), 0o644))
	must(os.WriteFile(dir+"/conf.d/b.conf", []byte("include "+dir+"/ld.so.conf\n"), 0o644)) // a loop ends
	got := ldSoConfDirs(dir+"/ld.so.conf", 0)
	if len(got) < 2 || got[0] != "/usr/local/lib/x" || got[len(got)-1] != "/opt/lib" {
		t.Errorf("got %v", got)
	}
}

func TestLinkableLibDir(t *testing.T) {
	for dir, want := range map[string]bool{"/lib": false, "/usr/lib": false, "/": false, "/lib/x86_64-linux-gnu": true, "/usr/lib64": true, "/lib64": true} {
		if got := linkableLibDir(dir); got != want {
			t.Errorf("linkableLibDir(%q) = %v, want %v", dir, got, want)
		}
	}
}
