package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/imgbake/imgbake/internal/vmtest"
	"github.com/imgbake/imgbake/testimages"
)

// toRaw converts an image to a raw file for the independent readers.
func toRaw(t *testing.T, img string) string {
	t.Helper()
	raw := filepath.Join(t.TempDir(), "view.raw")
	if b, err := exec.Command("qemu-img", "convert", "-O", "raw", img, raw).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert: %v %s", err, b)
	}
	return raw
}

// partitionStart reads a partition's first sector with sfdisk.
func partitionStart(t *testing.T, raw string, n int) int64 {
	t.Helper()
	out, err := exec.Command("sfdisk", "-d", raw).Output()
	must(t, err)
	m := regexp.MustCompile(fmt.Sprintf(`(?m)^\S+%d : start=\s*(\d+)`, n)).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no partition %d in\n%s", n, out)
	}
	start, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return start
}

// sfdiskVerify checks a partition table with sfdisk -V.
func sfdiskVerify(t *testing.T, raw string) {
	t.Helper()
	if b, err := exec.Command("sfdisk", "-V", raw).CombinedOutput(); err != nil {
		t.Errorf("sfdisk -V: %v\n%s", err, b)
	}
}

// sgdiskVerify checks a GPT with gdisk's verifier, which shares no code
// with the agent's go-diskfs or with util-linux.
func sgdiskVerify(t *testing.T, raw string) {
	t.Helper()
	vmtest.LookPath(t, "sgdisk", "gdisk")
	b, err := exec.Command("sgdisk", "-v", raw).CombinedOutput()
	if err != nil || !strings.Contains(string(b), "No problems found") {
		t.Errorf("sgdisk -v: %v\n%s", err, b)
	}
}

// dumpe2fsSize is an ext filesystem's size in bytes, read with dumpe2fs.
func dumpe2fsSize(t *testing.T, dev string) int64 {
	t.Helper()
	f := dumpe2fsFields(t, dev, "Block count", "Block size")
	return f[0] * f[1]
}

func xfsSize(t *testing.T, raw string, offset int64) int64 {
	t.Helper()
	part := filepath.Join(t.TempDir(), "part.xfs")
	if b, err := exec.Command("dd", "if="+raw, "of="+part, "bs=512", fmt.Sprintf("skip=%d", offset/512), "conv=sparse", "status=none").CombinedOutput(); err != nil {
		t.Fatalf("dd: %v %s", err, b)
	}
	out, err := exec.Command("xfs_db", "-r", "-f", "-c", "sb 0", "-c", "p dblocks blocksize", part).Output()
	must(t, err)
	m := regexp.MustCompile(`dblocks = (\d+)\s+blocksize = (\d+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("xfs_db: %s", out)
	}
	blocks, _ := strconv.ParseInt(string(m[1]), 10, 64)
	bs, _ := strconv.ParseInt(string(m[2]), 10, 64)
	return blocks * bs
}

// TestResize grows the GPT test image in place and the MBR/xfs one into a
// new image by 2 GiB: the root filesystem is 2 GiB larger (read with
// dumpe2fs and xfs_db), the partition tables verify (sfdisk -V, sgdisk -v), the
// files are still there; shrinking is refused and changes nothing.
func TestResize(t *testing.T) {
	vmTests(t)
	const grow = 2 << 30
	slack := int64(8 << 20) // alignment and filesystem rounding

	gpt := testimages.Fresh(t, testimages.GPT)
	info := testimages.InfoOf(t, testimages.GPT)
	before := toRaw(t, gpt)
	off := partitionStart(t, before, info.RootPartition) * 512
	sizeBefore := dumpe2fsSize(t, fmt.Sprintf("%s?offset=%d", before, off))
	os.Remove(before)
	if r := imgbake(t, "resize", "-a", gpt, "--size", "+2G"); r.code != 0 {
		t.Fatalf("resize: %s", r)
	}
	after := toRaw(t, gpt)
	sfdiskVerify(t, after)
	sgdiskVerify(t, after)
	if got := dumpe2fsSize(t, fmt.Sprintf("%s?offset=%d", after, off)); got < sizeBefore+grow-slack {
		t.Errorf("GPT root: %d bytes, want about %d + 2 GiB", got, sizeBefore)
	}
	if _, err := testimages.ReadFile(t, after, "raw", info.RootPartition, "/etc/hostname"); err != nil {
		t.Errorf("the grown filesystem lost /etc/hostname: %v", err)
	}

	mbr := testimages.Fresh(t, testimages.MBRXFS)
	mbrInfo := testimages.InfoOf(t, testimages.MBRXFS)
	start := partitionStart(t, mbr, mbrInfo.RootPartition) * 512
	xfsBefore := xfsSize(t, mbr, start)
	inSum := sha256File(t, mbr)
	out := filepath.Join(t.TempDir(), "big.qcow2")
	if r := imgbake(t, "resize", "-a", mbr, "--size", "+2G", "-o", out); r.code != 0 {
		t.Fatalf("resize -o: %s", r)
	}
	if sha256File(t, mbr) != inSum {
		t.Error("resize -o changed the input")
	}
	grown := toRaw(t, out)
	sfdiskVerify(t, grown)
	if got := xfsSize(t, grown, start); got < xfsBefore+grow-slack {
		t.Errorf("xfs root: %d bytes, want about %d + 2 GiB", got, xfsBefore)
	}

	for _, size := range []string{"512M", "-1G", "lots"} {
		r := imgbake(t, "resize", "-a", mbr, "--size", size)
		if r.code != 2 {
			t.Errorf("--size %s: exit %d, want 2\n%s", size, r.code, r)
		}
	}
	if sha256File(t, mbr) != inSum {
		t.Error("a refused resize changed the image")
	}
}

// TestRecipeDiskSize: a recipe's disk_size grows a smaller disk and its
// filesystem (here one on the whole disk) before the first step, and a
// second run changes nothing.
func TestRecipeDiskSize(t *testing.T) {
	vmTests(t)
	disk := testimages.Fresh(t, testimages.NoPart)
	before := dumpe2fsSize(t, disk)
	recipe := writeRecipe(t, "disk_size: 2G\nsteps:\n  - run: df -k / | tail -1 | awk '{print $2}' > /etc/df-kb\n")
	r := imgbake(t, "run", "-a", disk, recipe)
	if r.code != 0 || !strings.Contains(r.stderr, "disk grown to 2.0 GiB") {
		t.Fatalf("first run: %s", r)
	}
	fi, err := os.Stat(disk)
	must(t, err)
	if fi.Size() != 2<<30 {
		t.Errorf("the raw image is %d bytes, want 2 GiB", fi.Size())
	}
	after := dumpe2fsSize(t, disk)
	if after < 2<<30-8<<20 || after <= before {
		t.Errorf("filesystem %d bytes after, %d before: want about 2 GiB", after, before)
	}
	df, err := testimages.ReadFile(t, disk, "raw", 0, "/etc/df-kb")
	must(t, err)
	if kb, _ := strconv.ParseInt(strings.TrimSpace(string(df)), 10, 64); kb*1024 < after*9/10 {
		t.Errorf("the step saw a %d KiB root: the filesystem grew after it", kb)
	}
	r = imgbake(t, "run", "--force", "-a", disk, recipe)
	if r.code != 0 || strings.Contains(r.stderr, "disk grown") {
		t.Fatalf("second run grew again: %s", r)
	}
	if got := dumpe2fsSize(t, disk); got != after {
		t.Errorf("second run changed the filesystem size: %d, was %d", got, after)
	}
}
