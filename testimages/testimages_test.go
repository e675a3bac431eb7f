package testimages

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imgbake/imgbake/internal/vmtest"
	"github.com/u-root/u-root/pkg/cpio"
)

// vmTests: these build the test images and boot the verifier VM (see
// internal/vmtest).
func vmTests(t *testing.T) {
	t.Helper()
	vmtest.Gate(t)
}

// TestImages builds every image and reads files back with both independent readers.
func TestImages(t *testing.T) {
	vmTests(t)
	for _, name := range Names {
		start := time.Now()
		p := Path(t, name)
		t.Logf("%s: ready in %v: %s", name, time.Since(start).Round(100*time.Millisecond), p)
	}
	for _, name := range Names {
		t.Run(name, func(t *testing.T) {
			info := InfoOf(t, name)
			p := Path(t, name)
			checkInfo(t, info)
			wantMarker := name + "\n"
			paths := []string{"/etc/os-release", "/etc/imgbake-testimage", "/etc/hostname", "/etc/fstab", "/no/such/file"}

			if info.FSType == "ext4" {
				start := time.Now()
				m, err := ReadFiles(t, p, info.Format, info.RootPartition, paths...)
				if err != nil {
					t.Fatalf("ReadFiles (debugfs): %v", err)
				}
				t.Logf("debugfs: %d paths in %v", len(paths), time.Since(start).Round(time.Millisecond))
				checkFiles(t, "debugfs", info, m, wantMarker)
				data, err := ReadFileDebugfs(t, p, "", info.RootPartition, "/etc/imgbake-testimage")
				if err != nil || string(data) != wantMarker {
					t.Errorf("ReadFileDebugfs marker = %q, %v", data, err)
				}
				if _, err := ReadFile(t, p, info.Format, info.RootPartition, "/no/such/file"); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("ReadFile of a missing file: %v, want ErrNotExist", err)
				}
				if _, err := ReadFile(t, p, info.Format, info.RootPartition, "/etc"); err == nil {
					t.Errorf("ReadFile of a directory succeeded")
				}
				checkStats(t, "debugfs", func(path string) (FileInfo, error) {
					return StatDebugfs(t, p, info.Format, info.RootPartition, path)
				})
			}

			// The verifier VM, for every filesystem.
			m, err := ReadFilesVM(t, p, info.Format, info.RootPartition, paths...)
			if err != nil {
				t.Fatalf("ReadFilesVM: %v", err)
			}
			checkFiles(t, "vm", info, m, wantMarker)
			statPaths := []string{"/", "/tmp", "/etc/os-release", "/usr/bin/passwd", "/usr/bin/chage", "/dev/null",
				"/var/mail", "/bin/sh", "/usr/bin/dash", "/etc/hostname", "/nonexistent"}
			stats, err := StatVM(t, p, info.Format, info.RootPartition, statPaths...)
			if err != nil {
				t.Fatalf("StatVM: %v", err)
			}
			checkStats(t, "vm", func(path string) (FileInfo, error) {
				fi, ok := stats[path]
				if !ok {
					return fi, &fs.PathError{Op: "stat", Path: path, Err: fs.ErrNotExist}
				}
				return fi, nil
			})

			if info.ESPPartition > 0 {
				fsType, err := VerifierFSType(t, p, info.Format, info.ESPPartition)
				if err != nil || fsType != "vfat" {
					t.Errorf("ESP: mounted as %q, %v; want vfat", fsType, err)
				}
				st, err := StatVM(t, p, info.Format, info.ESPPartition, "/", "/EFI/BOOT/README.txt")
				if err != nil {
					t.Fatalf("StatVM ESP: %v", err)
				}
				if !st["/"].IsDir {
					t.Errorf("ESP /: %+v", st["/"])
				}
				if _, ok := st["/EFI/BOOT/README.txt"]; ok {
					data, err := ReadFile(t, p, info.Format, info.ESPPartition, "/EFI/BOOT/README.txt")
					if err != nil || !strings.Contains(string(data), name) {
						t.Errorf("ESP README.txt = %q, %v", data, err)
					}
				}
			}
		})
	}
}

func checkInfo(t *testing.T, info Info) {
	t.Helper()
	if info.Hostname != "testhost" || info.RootUUID == "" || info.FSType == "" || info.Format == "" {
		t.Errorf("sidecar: %+v", info)
	}
	switch info.Name {
	case GPT:
		if info.Format != "qcow2" || info.RootPartition != 3 || info.FSType != "ext4" || info.ESPPartition != 2 || info.ESPUUID == "" {
			t.Errorf("sidecar: %+v", info)
		}
	case MBRXFS:
		if info.Format != "raw" || info.RootPartition != 1 || info.FSType != "xfs" || info.Label != "xfsroot" {
			t.Errorf("sidecar: %+v", info)
		}
	case NoPart:
		if info.Format != "raw" || info.RootPartition != 0 || info.FSType != "ext4" {
			t.Errorf("sidecar: %+v", info)
		}
	}
}

func checkFiles(t *testing.T, reader string, info Info, m map[string][]byte, wantMarker string) {
	t.Helper()
	osr := string(m["/etc/os-release"])
	if !strings.Contains(osr, `VERSION_ID="12"`) || !strings.Contains(osr, "ID=debian") {
		t.Errorf("%s: /etc/os-release = %q", reader, osr)
	}
	if got := string(m["/etc/imgbake-testimage"]); got != wantMarker {
		t.Errorf("%s: /etc/imgbake-testimage = %q, want %q", reader, got, wantMarker)
	}
	if got := string(m["/etc/hostname"]); got != "testhost\n" {
		t.Errorf("%s: /etc/hostname = %q", reader, got)
	}
	fstab := string(m["/etc/fstab"])
	want := "UUID=" + info.RootUUID
	if info.FSType == "xfs" {
		want = "LABEL=" + info.Label
	}
	if !strings.Contains(fstab, want) {
		t.Errorf("%s: /etc/fstab does not contain %q:\n%s", reader, want, fstab)
	}
	if info.ESPUUID != "" && !strings.Contains(fstab, "UUID="+info.ESPUUID+"\t/boot/efi\tvfat\tumask=0077") {
		t.Errorf("%s: /etc/fstab lacks the ESP:\n%s", reader, fstab)
	}
	if _, ok := m["/no/such/file"]; ok {
		t.Errorf("%s: a missing file was returned", reader)
	}
}

func checkStats(t *testing.T, reader string, stat func(string) (FileInfo, error)) {
	t.Helper()
	check := func(path string, want func(FileInfo) bool) {
		t.Helper()
		fi, err := stat(path)
		if err != nil {
			t.Errorf("%s: stat %s: %v", reader, path, err)
			return
		}
		if !want(fi) {
			t.Errorf("%s: stat %s: unexpected %+v (mode %o)", reader, path, fi, fi.Mode)
		}
	}
	check("/tmp", func(fi FileInfo) bool { return fi.IsDir && fi.Mode == 041777 && fi.UID == 0 })
	check("/etc/os-release", func(fi FileInfo) bool { return fi.IsSymlink && fi.Target == "../usr/lib/os-release" })
	check("/usr/bin/passwd", func(fi FileInfo) bool { return fi.IsRegular() && fi.Perm() == 04755 && fi.Size > 1000 })
	check("/usr/bin/chage", func(fi FileInfo) bool { return fi.IsRegular() && fi.Perm() == 02755 && fi.GID == 42 })
	check("/dev/null", func(fi FileInfo) bool { return fi.Mode == syscall.S_IFCHR|0666 })
	check("/var/mail", func(fi FileInfo) bool { return fi.Mode == 042775 && fi.GID == 8 })
	check("/bin/sh", func(fi FileInfo) bool { return fi.IsSymlink && fi.Target == "dash" })
	check("/usr/bin/dash", func(fi FileInfo) bool { return fi.IsRegular() && fi.Perm() == 0755 })
	check("/etc/hostname", func(fi FileInfo) bool { return fi.IsRegular() && fi.Size == int64(len("testhost\n")) })
	if _, err := stat("/nonexistent"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s: stat /nonexistent: %v, want ErrNotExist", reader, err)
	}
}

// TestFresh checks that Fresh copies are private, sparse and identical.
func TestFresh(t *testing.T) {
	vmTests(t)
	for _, name := range Names {
		src := Path(t, name)
		dst := Fresh(t, name)
		if dst == src {
			t.Fatalf("Fresh returned the cached image")
		}
		var ss, ds syscall.Stat_t
		if err := syscall.Stat(src, &ss); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Stat(dst, &ds); err != nil {
			t.Fatal(err)
		}
		if ds.Size != ss.Size || ds.Blocks*512 > ss.Blocks*512+(1<<20) {
			t.Errorf("%s: copy size %d blocks %d, source size %d blocks %d", name, ds.Size, ds.Blocks, ss.Size, ss.Blocks)
		}
		if out, err := exec.Command("cmp", src, dst).CombinedOutput(); err != nil {
			t.Errorf("%s: copy differs: %v %s", name, err, out)
		}
	}
}

// TestSymlinkResolutionVM checks the verifier's symlink walk on the xfs image:
// a path through a directory symlink (/bin -> usr/bin) and a relative symlink
// with "..", and an absolute one that must stay inside the image.
func TestSymlinkResolutionVM(t *testing.T) {
	vmTests(t)
	info := InfoOf(t, MBRXFS)
	p := Path(t, MBRXFS)
	m, err := ReadFilesVM(t, p, info.Format, info.RootPartition,
		"/lib/os-release", "/bin/../lib/os-release", "/etc/../etc/imgbake-testimage", "/bin/sh", "/etc")
	if err == nil || !strings.Contains(err.Error(), "directory") {
		t.Errorf("reading a directory: err = %v", err)
	}
	m, err = ReadFilesVM(t, p, info.Format, info.RootPartition,
		"/lib/os-release", "/bin/../lib/os-release", "/etc/../etc/imgbake-testimage", "/bin/sh")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(m["/lib/os-release"], []byte("bookworm")) {
		t.Errorf("/lib/os-release = %q", m["/lib/os-release"])
	}
	// /bin -> usr/bin, so /bin/.. is /usr and /usr/lib/os-release exists.
	if !bytes.Equal(m["/bin/../lib/os-release"], m["/lib/os-release"]) {
		t.Errorf("/bin/../lib/os-release = %q", m["/bin/../lib/os-release"])
	}
	if string(m["/etc/../etc/imgbake-testimage"]) != MBRXFS+"\n" {
		t.Errorf("marker = %q", m["/etc/../etc/imgbake-testimage"])
	}
	if !bytes.HasPrefix(m["/bin/sh"], []byte("\x7fELF")) {
		t.Errorf("/bin/sh is not an ELF binary")
	}
}

// Unit tests below need no images or VM.

func TestParseSfdiskOffset(t *testing.T) {
	out := []byte(`{
   "partitiontable": {
      "label": "gpt", "id": "X", "device": "disk.raw", "unit": "sectors",
      "firstlba": 2048, "lastlba": 2097118, "sectorsize": 512,
      "partitions": [
         {"node": "disk.raw1", "start": 2048, "size": 2048, "type": "T"},
         {"node": "disk.raw3", "start": 135168, "size": 1959936, "type": "T"}
      ]
   }
}`)
	if off, err := parseSfdiskOffset(out, 3); err != nil || off != 135168*512 {
		t.Errorf("partition 3: %d, %v", off, err)
	}
	if _, err := parseSfdiskOffset(out, 2); err == nil {
		t.Errorf("partition 2 should not exist")
	}
}

func TestParseDebugfsStat(t *testing.T) {
	out := []byte(`Inode: 218   Type: directory    Mode:  01777   Flags: 0x80000
Generation: 0    Version: 0x00000000:00000000
User:     0   Group:     0   Project:     0   Size: 4096
File ACL: 0
`)
	fi, err := parseDebugfsStat(out)
	if err != nil || !fi.IsDir || fi.Mode != 041777 || fi.Size != 4096 {
		t.Errorf("dir: %+v %v", fi, err)
	}
	out = []byte(`Inode: 30   Type: symlink    Mode:  0777   Flags: 0x0
User:     0   Group:    42   Project:     0   Size: 21
Fast link dest: "../usr/lib/os-release"
`)
	fi, err = parseDebugfsStat(out)
	if err != nil || !fi.IsSymlink || fi.Target != "../usr/lib/os-release" || fi.GID != 42 || fi.Mode != 0120777 {
		t.Errorf("symlink: %+v %v", fi, err)
	}
	out = []byte(`Inode: 31   Type: character special    Mode:  0666   Flags: 0x0
User:     0   Group:     0   Project:     0   Size: 0
`)
	fi, err = parseDebugfsStat(out)
	if err != nil || fi.Mode != 020666 {
		t.Errorf("chardev: %+v %v", fi, err)
	}
}

func TestParseVerifierOutput(t *testing.T) {
	reqs := []vmReq{{"cat", "/a"}, {"cat", "/b"}, {"stat", "/c"}, {"cat", "/d"}}
	out := "noise\r\n@@IMGBAKE-BEGIN xfs\r\n@@R 0 OK\r\naGVs\r\nbG8K\r\n@@E 0 OK\r\n@@R 1 MISSING\r\n" +
		"@@S 2 OK a1ff 0 0 4\r\nZGFzaAo=\r\n@@E 2 OK\r\n@@R 3 ERR is a directory\r\n@@IMGBAKE-END\r\n"
	res, fsType, err := parseVerifierOutput([]byte(out), reqs)
	if err != nil {
		t.Fatal(err)
	}
	if fsType != "xfs" || string(res[0].data) != "hello\n" || !res[1].missing ||
		!res[2].stat.IsSymlink || res[2].stat.Target != "dash" || res[3].err != "is a directory" {
		t.Errorf("got %q %+v", fsType, res)
	}
	if _, _, err := parseVerifierOutput([]byte("@@IMGBAKE-BEGIN ext4\n@@R 0 OK\naGVs\n"), reqs); err == nil {
		t.Error("truncated output accepted")
	}
}

// TestBaseInitramfs: the verifier's initramfs, from a fake busybox and
// module tree, holds what /init needs, modules in load order (a .ko.gz
// uncompressed), and reads back as the kernel would (newc); the request
// archive too.
func TestBaseInitramfs(t *testing.T) {
	dir := t.TempDir()
	bb := filepath.Join(dir, "busybox")
	mods := filepath.Join(dir, "modules")
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte("xfs module"))
	zw.Close()
	for name, data := range map[string][]byte{
		bb:                                []byte("busybox binary"),
		mods + "/modules.dep":             []byte("kernel/fs/xfs/xfs.ko.gz: kernel/lib/libcrc32c.ko\nkernel/lib/libcrc32c.ko:\nkernel/other.ko:\n"),
		mods + "/kernel/fs/xfs/xfs.ko.gz": gz.Bytes(),
		mods + "/kernel/lib/libcrc32c.ko": []byte("crc module"),
		mods + "/kernel/other.ko":         []byte("not wanted"),
	} {
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(name, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	base, err := buildBaseInitramfs(bb, mods)
	if err != nil {
		t.Fatal(err)
	}
	req, err := requestArchive(2, "cat /etc/hostname\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(base)%4 != 0 {
		t.Errorf("base archive of %d bytes: the request would not start aligned", len(base))
	}
	got := map[string]cpio.Record{}
	var names []string
	for _, archive := range [][]byte{base, req} {
		rr := cpio.EOFReader{RecordReader: cpio.Newc.Reader(bytes.NewReader(archive))}
		recs, err := cpio.ReadAllRecords(rr)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			got[r.Name] = r
			names = append(names, r.Name)
		}
	}
	content := func(name string) string {
		r, ok := got[name]
		if !ok {
			t.Errorf("%s missing; archive: %v", name, names)
			return ""
		}
		b, err := io.ReadAll(io.NewSectionReader(r.ReaderAt, 0, int64(r.FileSize)))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if c := got["dev/console"]; c.Mode != cpio.S_IFCHR|0o600 || c.Rmajor != 5 || c.Rminor != 1 {
		t.Errorf("dev/console: %v", c)
	}
	if c := got["dev/ttyS1"]; c.Mode != cpio.S_IFCHR|0o600 || c.Rmajor != 4 || c.Rminor != 65 {
		t.Errorf("dev/ttyS1: %v", c)
	}
	if d := got["lib/modules"]; d.Mode != cpio.S_IFDIR|0o755 {
		t.Errorf("lib/modules: %v", d)
	}
	if got["init"].Mode != cpio.S_IFREG|0o755 || !strings.HasPrefix(content("init"), "#!/bin/busybox sh") {
		t.Errorf("init: %v", got["init"])
	}
	for name, want := range map[string]string{
		"bin/busybox":                 "busybox binary",
		"lib/modules/00-libcrc32c.ko": "crc module",
		"lib/modules/01-xfs.ko":       "xfs module",
		"modules.order":               "00-libcrc32c.ko\n01-xfs.ko\n",
		"req/part":                    "2",
		"req/fstype":                  "",
		"req/list":                    "cat /etc/hostname\n",
	} {
		if c := content(name); c != want {
			t.Errorf("%s: %q, want %q", name, c, want)
		}
	}
	if _, err := exec.LookPath("cpio"); err == nil {
		// And GNU cpio agrees.
		cmd := exec.Command("cpio", "-it")
		cmd.Stdin = bytes.NewReader(base)
		if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "lib/modules/01-xfs.ko") {
			t.Errorf("cpio -it: %v: %s", err, out)
		}
	}
}

// fakeTB records how Path and build end a test.
type fakeTB struct {
	failed, skipped bool
	msg             string
	logs            []string
}

func (f *fakeTB) Helper()          {}
func (f *fakeTB) Skip(args ...any) { f.skipped, f.msg = true, fmt.Sprint(args...) }
func (f *fakeTB) Logf(format string, args ...any) {
	f.logs = append(f.logs, fmt.Sprintf(format, args...))
}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed, f.msg = true, fmt.Sprintf(format, args...)
}

// TestBuildFailureNamesTheLog: a failing build.sh fails the test with a
// message naming the build log, which holds build.sh's output; the next
// test needing the image fails at once, naming the same log.
func TestBuildFailureNamesTheLog(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("IMGBAKE_TESTIMAGES_DIR", dir)
	script := filepath.Join(t.TempDir(), "build.sh")
	if err := os.WriteFile(script, []byte("echo \"build.sh: building $1\"\necho 'build.sh: error: debootstrap failed' >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		buildMu.Lock()
		delete(buildFailed, NoPart)
		buildMu.Unlock()
	})

	var f fakeTB
	buildMu.Lock()
	p := build(&f, script, NoPart)
	buildMu.Unlock()
	log := filepath.Join(dir, NoPart+".build.log")
	if p != "" || !f.failed {
		t.Fatalf("build of a failing script = %q, failed %v", p, f.failed)
	}
	for _, want := range []string{"building test image " + NoPart + " failed", "exit status 3", "build log: " + log, "build.sh: error: debootstrap failed"} {
		if !strings.Contains(f.msg, want) {
			t.Errorf("failure message lacks %q:\n%s", want, f.msg)
		}
	}
	data, err := os.ReadFile(log)
	if err != nil {
		t.Fatalf("no build log: %v", err)
	}
	for _, want := range []string{"build.sh: building " + NoPart + "\n", "build.sh: error: debootstrap failed\n", "exit status 3"} {
		if !strings.Contains(string(data), want) {
			t.Errorf("build log lacks %q:\n%s", want, data)
		}
	}

	// The image is still missing: Path fails at once, naming the log, even
	// without IMGBAKE_VM_TESTS.
	for _, vm := range []string{"1", ""} {
		t.Setenv("IMGBAKE_VM_TESTS", vm)
		var g fakeTB
		if p := path(&g, NoPart); p != "" || !g.failed || g.skipped ||
			!strings.Contains(g.msg, "failed earlier in this run") || !strings.Contains(g.msg, log) {
			t.Errorf("IMGBAKE_VM_TESTS=%q: Path after a failed build = %q, failed %v skipped %v: %s", vm, p, g.failed, g.skipped, g.msg)
		}
		if len(g.logs) != 0 {
			t.Errorf("Path built again: %q", g.logs)
		}
	}
}

// TestPathCannotBuild: an image that is missing and cannot be built here
// (no build tools on PATH; or not root) fails the test under
// IMGBAKE_VM_TESTS=1, saying how to build it, and skips it otherwise.
func TestPathCannotBuild(t *testing.T) {
	t.Setenv("IMGBAKE_TESTIMAGES_DIR", t.TempDir())
	t.Setenv("PATH", t.TempDir())
	for _, tc := range []struct {
		vm   string
		fail bool
	}{{"1", true}, {"", false}} {
		t.Setenv("IMGBAKE_VM_TESTS", tc.vm)
		for _, name := range []string{NoPart, Python} {
			var f fakeTB
			p := path(&f, name)
			if p != "" || f.failed != tc.fail || f.skipped == tc.fail {
				t.Errorf("IMGBAKE_VM_TESTS=%q %s: %q, failed %v skipped %v, want failed %v", tc.vm, name, p, f.failed, f.skipped, tc.fail)
			}
			how := "make images"
			if name == Python {
				how = "testimages/build.sh " + Python
			}
			for _, want := range []string{"missing prerequisite", "test image " + name + " is not built", how} {
				if !strings.Contains(f.msg, want) {
					t.Errorf("IMGBAKE_VM_TESTS=%q %s: message lacks %q: %s", tc.vm, name, want, f.msg)
				}
			}
			if len(f.logs) != 0 {
				t.Errorf("a build was attempted: %q", f.logs)
			}
		}
	}
}
