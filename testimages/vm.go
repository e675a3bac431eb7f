package testimages

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"debug/elf"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imgbake/imgbake/internal/vmtest"
	"github.com/u-root/u-root/pkg/cpio"

	"github.com/imgbake/imgbake/appliance/kernel"
)

// The verifier VM: qemu-system-x86_64 (TCG, no KVM needed) boots the host
// kernel with a tiny initramfs (static busybox, an /init script, the modules
// for virtio-blk, xfs and vfat), attaches the image with snapshot=on (the
// image file is never written; an ext4/xfs journal is replayed into the
// throw-away overlay), mounts the partition read-only and writes the
// requested files base64-encoded between markers to its second serial port.
//
// Environment:
//
//	IMGBAKE_KERNEL           kernel image (default: newest /boot/vmlinuz-*-cloud-amd64,
//	                         else newest /boot/vmlinuz-*; kernel.Find, as the appliance)
//	IMGBAKE_KERNEL_MODULES   its modules directory (default /lib/modules/VERSION,
//	                         VERSION taken from the vmlinuz-VERSION file name)
//	IMGBAKE_BUSYBOX          a statically linked busybox (default /bin/busybox)
//	IMGBAKE_VERIFIER_TIMEOUT how long one boot may take (Go duration, default 60s)
//	IMGBAKE_VERIFIER_DEBUG   if set, log the VM's console

// VerifierTimeout is the default limit for one verifier VM run.
const VerifierTimeout = 60 * time.Second

// modules the verifier loads if they are modules (dependencies are added).
var verifierModules = []string{
	"virtio_pci", "virtio_blk", "ext4", "xfs", "vfat",
	"nls_cp437", "nls_ascii", "nls_utf8", "nls_iso8859_1",
}

// ReadFilesVM reads paths from partition of the image with the verifier VM,
// in one boot, whatever the filesystem (anything the kernel mounts: ext2/3/4,
// xfs, vfat). See ReadFiles for the arguments and the result. When qemu, a
// kernel or a static busybox is missing the test fails under
// IMGBAKE_VM_TESTS=1 and is skipped otherwise (see internal/vmtest).
func ReadFilesVM(t testing.TB, imagePath, format string, partition int, paths ...string) (map[string][]byte, error) {
	t.Helper()
	reqs := make([]vmReq, len(paths))
	for i, p := range paths {
		reqs[i] = vmReq{op: "cat", path: p}
	}
	results, err := runVerifier(t, imagePath, format, partition, reqs)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]byte, len(paths))
	for i, r := range results {
		switch {
		case r.missing:
			continue
		case r.err != "":
			return out, fmt.Errorf("testimages: verifier: %s: %s", paths[i], r.err)
		}
		out[paths[i]] = r.data
	}
	return out, nil
}

// StatVM is Stat for many paths in one verifier VM boot. Paths that do not
// exist are left out of the map.
func StatVM(t testing.TB, imagePath, format string, partition int, paths ...string) (map[string]FileInfo, error) {
	t.Helper()
	reqs := make([]vmReq, len(paths))
	for i, p := range paths {
		reqs[i] = vmReq{op: "stat", path: p}
	}
	results, err := runVerifier(t, imagePath, format, partition, reqs)
	if err != nil {
		return nil, err
	}
	out := make(map[string]FileInfo, len(paths))
	for i, r := range results {
		switch {
		case r.missing:
			continue
		case r.err != "":
			return out, fmt.Errorf("testimages: verifier: %s: %s", paths[i], r.err)
		}
		out[paths[i]] = r.stat
	}
	return out, nil
}

// VerifierFSType boots the verifier VM and returns the filesystem type the
// kernel mounted partition as (e.g. "ext4", "xfs", "vfat").
func VerifierFSType(t testing.TB, imagePath, format string, partition int) (string, error) {
	t.Helper()
	_, fsType, err := runVerifierFS(t, imagePath, format, partition, nil)
	return fsType, err
}

type vmReq struct {
	op   string // "cat" or "stat"
	path string
}

type vmResult struct {
	missing bool
	err     string
	data    []byte
	stat    FileInfo
}

// kernelSetup is what the verifier needs from the host, found once.
type kernelSetup struct {
	kernel  string
	modDir  string
	base    []byte // initramfs without the request
	missing string // the prerequisite missing here, and how to get it
	err     error
}

var (
	setupOnce sync.Once
	setup     kernelSetup
)

func verifierSetup() *kernelSetup {
	setupOnce.Do(func() {
		setup = findSetup()
	})
	return &setup
}

func findSetup() kernelSetup {
	var s kernelSetup
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		s.missing = "qemu-system-x86_64 not found: install the Debian package qemu-system-x86 (" + vmtest.InstallDeps + ")"
		return s
	}
	k, err := kernel.Find("")
	if err != nil {
		s.missing = err.Error()
		return s
	}
	s.kernel, s.modDir = k.Image, k.ModulesDir
	bb, err := findBusybox()
	if err != nil {
		s.missing = err.Error()
		return s
	}
	s.base, s.err = buildBaseInitramfs(bb, s.modDir)
	return s
}

func findBusybox() (string, error) {
	cands := []string{"/bin/busybox", "/usr/bin/busybox"}
	if b := os.Getenv("IMGBAKE_BUSYBOX"); b != "" {
		cands = []string{b}
	}
	for _, c := range cands {
		f, err := elf.Open(c)
		if err != nil {
			continue
		}
		static := true
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				static = false
			}
		}
		f.Close()
		if static {
			return c, nil
		}
	}
	return "", fmt.Errorf("no statically linked busybox: install the Debian package busybox-static (%s) or set IMGBAKE_BUSYBOX", vmtest.InstallDeps)
}

// buildBaseInitramfs is the verifier's initramfs without the request:
// busybox, /init, the device nodes it needs before devtmpfs, and the
// modules (uncompressed) with the order busybox insmod loads them in.
func buildBaseInitramfs(busybox, modDir string) ([]byte, error) {
	bb, err := os.ReadFile(busybox)
	if err != nil {
		return nil, err
	}
	idx, err := kernel.LoadModules(modDir)
	if err != nil {
		return nil, fmt.Errorf("testimages: kernel modules: %v", err)
	}
	var recs []cpio.Record
	for _, d := range []string{"bin", "dev", "proc", "sys", "mnt", "tmp", "lib", "lib/modules"} {
		recs = append(recs, cpio.Directory(d, 0o755))
	}
	recs = append(recs,
		cpio.CharDev("dev/console", 0o600, 5, 1),
		cpio.CharDev("dev/null", 0o666, 1, 3),
		cpio.CharDev("dev/ttyS1", 0o600, 4, 65),
		regular("bin/busybox", 0o755, bb),
		regular("init", 0o755, []byte(initScript)))
	var order strings.Builder
	for i, m := range idx.Resolve(verifierModules, nil) {
		data, err := os.ReadFile(filepath.Join(modDir, m))
		if err != nil {
			return nil, fmt.Errorf("testimages: kernel module: %v", err)
		}
		name := filepath.Base(m)
		switch {
		case strings.HasSuffix(name, ".ko"):
		case strings.HasSuffix(name, ".ko.gz"):
			zr, err := gzip.NewReader(bytes.NewReader(data))
			if err != nil {
				return nil, fmt.Errorf("testimages: %s: %v", m, err)
			}
			if data, err = io.ReadAll(zr); err != nil {
				return nil, fmt.Errorf("testimages: %s: %v", m, err)
			}
			name = strings.TrimSuffix(name, ".gz")
		default:
			return nil, fmt.Errorf("testimages: kernel module %s: only .ko and .ko.gz are supported", m)
		}
		name = fmt.Sprintf("%02d-%s", i, name)
		recs = append(recs, regular("lib/modules/"+name, 0o644, data))
		order.WriteString(name + "\n")
	}
	recs = append(recs, regular("modules.order", 0o644, []byte(order.String())))
	return newcArchive(recs)
}

// requestArchive is the verifier's request, a second archive appended to
// the base one: the partition, the filesystem type to mount it as (empty:
// the kernel's guess) and the list of operations.
func requestArchive(partition int, list string) ([]byte, error) {
	return newcArchive([]cpio.Record{
		cpio.Directory("req", 0o755),
		regular("req/part", 0o644, []byte(strconv.Itoa(partition))),
		regular("req/fstype", 0o644, nil),
		regular("req/list", 0o644, []byte(list)),
	})
}

func regular(name string, perm uint64, data []byte) cpio.Record {
	return cpio.StaticRecord(data, cpio.Info{Name: name, Mode: cpio.S_IFREG | perm})
}

// newcArchive is recs as a "newc" cpio archive, as the kernel's initramfs
// wants, with its trailer.
func newcArchive(recs []cpio.Record) ([]byte, error) {
	var buf bytes.Buffer
	w := cpio.Newc.Writer(&buf)
	cpio.MakeAllReproducible(recs)
	if err := cpio.WriteRecords(w, recs); err != nil {
		return nil, err
	}
	if err := cpio.WriteTrailer(w); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// initScript is the verifier's /init (busybox sh).
const initScript = `#!/bin/busybox sh
# imgbake testimages verifier: independent of imgbake's appliance.
/bin/busybox mkdir -p /proc /sys /dev /mnt /tmp
/bin/busybox --install -s /bin
PATH=/bin
export PATH
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
[ -c /dev/ttyS1 ] || mknod /dev/ttyS1 c 4 65
while read -r m; do
	insmod "/lib/modules/$m" 2>/tmp/insmod.err || echo "verifier: insmod $m: $(cat /tmp/insmod.err)"
done </modules.order

part=$(cat /req/part)
dev=/dev/vda
[ "$part" = 0 ] || dev=/dev/vda$part
i=0
while [ ! -b "$dev" ] && [ $i -lt 300 ]; do
	sleep 0.05
	i=$((i+1))
done

stty -F /dev/ttyS1 raw -echo 2>/dev/null
exec 3>/dev/ttyS1
out() { echo "$*" >&3; }

finish() {
	out "@@IMGBAKE-END"
	exec 3>&-
	sync
	poweroff -f
	echo o >/proc/sysrq-trigger
	exit 0
}

# resolve PATH FOLLOW: the path under /mnt of PATH inside the image, following
# symlinks as the image's own root sees them (absolute targets stay inside
# /mnt); FOLLOW=0 leaves a final symlink alone.
resolve() {
	r_rest=$1
	r_cur=
	r_n=0
	while :; do
		while :; do
			case "$r_rest" in
			/*) r_rest=${r_rest#/} ;;
			*) break ;;
			esac
		done
		[ -z "$r_rest" ] && break
		r_comp=${r_rest%%/*}
		case "$r_rest" in
		*/*) r_rest=${r_rest#*/} ;;
		*) r_rest= ;;
		esac
		case "$r_comp" in
		.) continue ;;
		..) r_cur=${r_cur%/*}; continue ;;
		esac
		if [ -L "/mnt$r_cur/$r_comp" ] && { [ -n "$r_rest" ] || [ "$2" = 1 ]; }; then
			r_n=$((r_n+1))
			[ $r_n -gt 40 ] && return 1
			r_t=$(readlink "/mnt$r_cur/$r_comp")
			case "$r_t" in
			/*) r_cur= ;;
			esac
			r_rest="$r_t/$r_rest"
		else
			r_cur="$r_cur/$r_comp"
		fi
	done
	echo "/mnt$r_cur"
}

fstype=$(cat /req/fstype)
if [ -n "$fstype" ]; then
	mount -t "$fstype" -o ro "$dev" /mnt 2>/tmp/mount.err
else
	mount -o ro "$dev" /mnt 2>/tmp/mount.err
fi
if [ $? -ne 0 ]; then
	echo "verifier: mount $dev failed: $(cat /tmp/mount.err)"
	dmesg | tail -n 20
	out "@@IMGBAKE-BEGIN"
	out "@@MOUNTFAIL $dev: $(cat /tmp/mount.err | tr '\n' ' ')"
	finish
fi
fstype=$(awk '$2 == "/mnt" { print $3 }' /proc/mounts)
out "@@IMGBAKE-BEGIN $fstype"
n=0
while IFS= read -r line; do
	op=${line%% *}
	p=${line#* }
	case "$op" in
	cat)
		if f=$(resolve "$p" 1); then
			if [ -f "$f" ]; then
				out "@@R $n OK"
				if base64 "$f" >&3; then out "@@E $n OK"; else out "@@E $n FAIL"; fi
			elif [ -d "$f" ]; then
				out "@@R $n ERR is a directory"
			elif [ -e "$f" ]; then
				out "@@R $n ERR not a regular file"
			else
				out "@@R $n MISSING"
			fi
		else
			out "@@R $n ERR too many levels of symbolic links"
		fi
		;;
	stat)
		if f=$(resolve "$p" 0); then
			if [ -e "$f" ] || [ -L "$f" ]; then
				out "@@S $n OK $(stat -c '%f %u %g %s' "$f")"
				[ -L "$f" ] && readlink "$f" | base64 >&3
				out "@@E $n OK"
			else
				out "@@S $n MISSING"
			fi
		else
			out "@@S $n ERR too many levels of symbolic links"
		fi
		;;
	esac
	n=$((n+1))
done </req/list
umount /mnt
finish
`

func runVerifier(t testing.TB, imagePath, format string, partition int, reqs []vmReq) ([]vmResult, error) {
	t.Helper()
	res, _, err := runVerifierFS(t, imagePath, format, partition, reqs)
	return res, err
}

func runVerifierFS(t testing.TB, imagePath, format string, partition int, reqs []vmReq) ([]vmResult, string, error) {
	t.Helper()
	s := verifierSetup()
	if s.missing != "" {
		vmtest.Missing(t, "testimages: the verifier VM cannot run here: %s", s.missing)
		return nil, "", fmt.Errorf("testimages: verifier VM: %s", s.missing)
	}
	if s.err != nil {
		return nil, "", s.err
	}
	if format == "" {
		var err error
		if format, err = detectFormat(imagePath); err != nil {
			return nil, "", err
		}
	}
	abs, err := filepath.Abs(imagePath)
	if err != nil {
		return nil, "", err
	}
	if strings.Contains(abs, ",") {
		return nil, "", fmt.Errorf("testimages: image path %q contains a comma, which qemu -drive cannot take", abs)
	}
	var list strings.Builder
	for _, r := range reqs {
		if !strings.HasPrefix(r.path, "/") || strings.ContainsAny(r.path, "\n\x00") {
			return nil, "", fmt.Errorf("testimages: unsupported path %q (must be absolute, without newlines)", r.path)
		}
		list.WriteString(r.op + " " + r.path + "\n")
	}

	dir, err := os.MkdirTemp("", "imgbake-verifier-")
	if err != nil {
		return nil, "", err
	}
	defer os.RemoveAll(dir)

	// The request is a second cpio archive appended to the base one.
	req, err := requestArchive(partition, list.String())
	if err != nil {
		return nil, "", err
	}
	initrd := filepath.Join(dir, "initrd")
	if err := os.WriteFile(initrd, append(append([]byte{}, s.base...), req...), 0600); err != nil {
		return nil, "", err
	}
	consoleLog := filepath.Join(dir, "console.log")
	dataOut := filepath.Join(dir, "data.out")

	timeout := VerifierTimeout
	if v := os.Getenv("IMGBAKE_VERIFIER_TIMEOUT"); v != "" {
		if d, err := time.ParseDuration(v); err == nil && d > 0 {
			timeout = d
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	args := []string{
		"-M", "q35", "-accel", "tcg", "-m", "384", "-smp", "1",
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-kernel", s.kernel, "-initrd", initrd,
		"-append", "console=ttyS0 panic=-1 loglevel=4 rdinit=/init",
		"-serial", "file:" + consoleLog,
		"-serial", "file:" + dataOut,
		"-drive", "file=" + abs + ",format=" + format + ",if=none,id=disk0,snapshot=on",
		"-device", "virtio-blk-pci,drive=disk0",
	}
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64", args...)
	cmd.Env = append(os.Environ(), "TMPDIR="+dir) // snapshot overlay goes there
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Stdout = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("testimages: starting qemu: %v", err)
	}
	var waitOnce sync.Once
	var waitErr error
	wait := func() error {
		waitOnce.Do(func() { waitErr = cmd.Wait() })
		return waitErr
	}
	// Should the test end while qemu runs (FailNow from another goroutine),
	// do not leave it behind.
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = wait()
	})
	err = wait()
	elapsed := time.Since(start)
	consoleTail := func() string {
		b, _ := os.ReadFile(consoleLog)
		lines := strings.Split(strings.TrimRight(strings.ReplaceAll(string(b), "\r", ""), "\n"), "\n")
		if len(lines) > 30 {
			lines = lines[len(lines)-30:]
		}
		return strings.Join(lines, "\n")
	}
	if ctx.Err() != nil {
		return nil, "", fmt.Errorf("testimages: verifier VM timed out after %v; console:\n%s", timeout, consoleTail())
	}
	if err != nil {
		return nil, "", fmt.Errorf("testimages: qemu: %v: %s\nconsole:\n%s", err, stderr.String(), consoleTail())
	}
	data, err := os.ReadFile(dataOut)
	if err != nil {
		return nil, "", err
	}
	results, fsType, err := parseVerifierOutput(data, reqs)
	if err != nil {
		return nil, "", fmt.Errorf("testimages: verifier: %v\nconsole:\n%s", err, consoleTail())
	}
	if os.Getenv("IMGBAKE_VERIFIER_DEBUG") != "" {
		b, _ := os.ReadFile(consoleLog)
		t.Logf("testimages: verifier console:\n%s", strings.ReplaceAll(string(b), "\r", ""))
	}
	t.Logf("testimages: verifier VM read %d path(s) from %s partition %d (%s) in %v",
		len(reqs), filepath.Base(imagePath), partition, fsType, elapsed.Round(100*time.Millisecond))
	return results, fsType, nil
}

// parseVerifierOutput decodes what the verifier wrote to its data port.
func parseVerifierOutput(data []byte, reqs []vmReq) ([]vmResult, string, error) {
	data = bytes.ReplaceAll(data, []byte("\r"), nil)
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	results := make([]vmResult, len(reqs))
	got := make([]bool, len(reqs))
	fsType := ""
	begun, ended := false, false
	cur := -1 // request whose body is being read
	var body strings.Builder
	for sc.Scan() {
		line := sc.Text()
		if !begun {
			if strings.HasPrefix(line, "@@IMGBAKE-BEGIN") {
				begun = true
				fsType = strings.TrimSpace(strings.TrimPrefix(line, "@@IMGBAKE-BEGIN"))
			}
			continue
		}
		if cur >= 0 && !strings.HasPrefix(line, "@@") {
			body.WriteString(line)
			continue
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "@@MOUNTFAIL":
			return nil, "", fmt.Errorf("mount failed: %s", strings.TrimPrefix(line, "@@MOUNTFAIL "))
		case "@@IMGBAKE-END":
			ended = true
		case "@@R", "@@S":
			if len(f) < 3 {
				return nil, "", fmt.Errorf("bad line %q", line)
			}
			i, err := strconv.Atoi(f[1])
			if err != nil || i < 0 || i >= len(reqs) {
				return nil, "", fmt.Errorf("bad line %q", line)
			}
			got[i] = true
			switch f[2] {
			case "MISSING":
				results[i].missing = true
			case "ERR":
				results[i].err = strings.Join(f[3:], " ")
			case "OK":
				if f[0] == "@@S" {
					if len(f) != 7 {
						return nil, "", fmt.Errorf("bad stat line %q", line)
					}
					mode, err1 := strconv.ParseUint(f[3], 16, 32)
					uid, err2 := strconv.ParseUint(f[4], 10, 32)
					gid, err3 := strconv.ParseUint(f[5], 10, 32)
					size, err4 := strconv.ParseInt(f[6], 10, 64)
					if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
						return nil, "", fmt.Errorf("bad stat line %q", line)
					}
					results[i].stat = FileInfo{
						Mode: uint32(mode), UID: uint32(uid), GID: uint32(gid), Size: size,
						IsDir: mode&sIFMT == sIFDIR, IsSymlink: mode&sIFMT == sIFLNK,
					}
				}
				cur = i
				body.Reset()
			default:
				return nil, "", fmt.Errorf("bad line %q", line)
			}
		case "@@E":
			if cur < 0 || len(f) < 3 || f[1] != strconv.Itoa(cur) {
				return nil, "", fmt.Errorf("unexpected %q", line)
			}
			dec, err := base64.StdEncoding.DecodeString(body.String())
			if err != nil {
				return nil, "", fmt.Errorf("request %d: bad base64: %v", cur, err)
			}
			if f[2] != "OK" {
				results[cur].err = "read error"
			} else if reqs[cur].op == "stat" {
				results[cur].stat.Target = strings.TrimSuffix(string(dec), "\n")
			} else {
				results[cur].data = dec
			}
			cur = -1
		default:
			return nil, "", fmt.Errorf("bad line %q", line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, "", err
	}
	if !begun {
		return nil, "", fmt.Errorf("no output (no @@IMGBAKE-BEGIN)")
	}
	if !ended || cur >= 0 {
		return nil, "", fmt.Errorf("output incomplete (no @@IMGBAKE-END)")
	}
	for i, ok := range got {
		if !ok {
			return nil, "", fmt.Errorf("no answer for %s %s", reqs[i].op, reqs[i].path)
		}
	}
	return results, fsType, nil
}
