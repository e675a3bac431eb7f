package testimages

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

func vmTests(t *testing.T) {
	t.Helper()
	if os.Getenv("IMGBAKE_VM_TESTS") != "1" {
		t.Skip("set IMGBAKE_VM_TESTS=1 to build the test images and boot the verifier VM")
	}
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

func TestResolveModules(t *testing.T) {
	dep := []byte(`kernel/fs/xfs/xfs.ko: kernel/lib/libcrc32c.ko
kernel/lib/libcrc32c.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio.ko:
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/fs/nls/nls_iso8859-1.ko:
`)
	got := resolveModules(dep, []string{"virtio_pci", "virtio_blk", "ext4", "xfs", "nls_iso8859_1"})
	want := []string{
		"kernel/drivers/virtio/virtio_pci_legacy_dev.ko", "kernel/drivers/virtio/virtio_pci_modern_dev.ko",
		"kernel/drivers/virtio/virtio.ko", "kernel/drivers/virtio/virtio_ring.ko", "kernel/drivers/virtio/virtio_pci.ko",
		"kernel/drivers/block/virtio_blk.ko", "kernel/lib/libcrc32c.ko", "kernel/fs/xfs/xfs.ko", "kernel/fs/nls/nls_iso8859-1.ko",
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("got  %v\nwant %v", got, want)
	}
}

func TestVersionLess(t *testing.T) {
	if !versionLess("/boot/vmlinuz-6.1.0-9-cloud-amd64", "/boot/vmlinuz-6.1.0-10-cloud-amd64") {
		t.Error("6.1.0-9 < 6.1.0-10")
	}
	if versionLess("/boot/vmlinuz-6.10.0-1-cloud-amd64", "/boot/vmlinuz-6.9.0-1-cloud-amd64") {
		t.Error("6.10 > 6.9")
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

func TestCpioWriter(t *testing.T) {
	if _, err := exec.LookPath("cpio"); err != nil {
		t.Skip("cpio not installed")
	}
	var buf bytes.Buffer
	c := &cpioWriter{w: &buf}
	c.dir("d")
	c.file("d/f", 0644, []byte("hello"))
	c.entry("dev/console", sIFCHR|0600, 5, 1, nil)
	c.close()
	cmd := exec.Command("cpio", "-it", "-v")
	cmd.Stdin = &buf
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cpio: %v: %s", err, out)
	}
	var file, dev bool
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		switch {
		case strings.HasSuffix(line, " d/f"):
			file = strings.HasPrefix(line, "-rw-r--r--") && len(f) > 4 && f[4] == "5"
		case strings.HasSuffix(line, " dev/console"):
			dev = strings.HasPrefix(line, "crw-------") && strings.Contains(line, " 5,")
		}
	}
	if !file || !dev {
		t.Errorf("cpio -itv:\n%s", out)
	}
}
