package agent

import (
	"crypto/sha256"
	"encoding/binary"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/imgbake/imgbake/appliance/proto"
)

// partitionedDisk writes script with the host's sfdisk onto a new sparse
// file of size bytes and returns its path.
func partitionedDisk(t testing.TB, size int64, script string) string {
	t.Helper()
	if _, err := exec.LookPath("sfdisk"); err != nil {
		t.Fatalf("sfdisk (package fdisk, scripts/install-deps.sh) is needed: %v", err)
	}
	p := filepath.Join(t.TempDir(), "disk.raw")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, size); err != nil {
		t.Fatal(err)
	}
	sfdiskWrite(t, p, script)
	return p
}

func sfdiskWrite(t testing.TB, p, script string) {
	t.Helper()
	cmd := exec.Command("sfdisk", "--no-reread", "--no-tell-kernel", p)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
}

func growFile(t *testing.T, p string, sectorSize, number int) (proto.GrowPartitionResult, error) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return growPartitionTable(f, st.Size(), sectorSize, sectorSize, number)
}

// sfdiskDump is `sfdisk -d`: the table as a script, every field of every
// partition (uuid, name, attrs, type, bootable).
func sfdiskDump(t *testing.T, p string) string {
	t.Helper()
	out, err := exec.Command("sfdisk", "-d", p).CombinedOutput()
	if err != nil {
		t.Fatalf("sfdisk -d: %v\n%s", err, out)
	}
	return regexp.MustCompile(`=\s+`).ReplaceAllString(string(out), "=")
}

func sfdiskVerify(t *testing.T, p string) {
	t.Helper()
	out, err := exec.Command("sfdisk", "-V", p).CombinedOutput()
	if err != nil {
		t.Errorf("sfdisk -V: %v\n%s", err, out)
	}
}

// sgdiskVerify runs gdisk's own verifier, which knows nothing of
// go-diskfs or util-linux (package gdisk, scripts/install-deps.sh).
func sgdiskVerify(t *testing.T, p string) string {
	t.Helper()
	if _, err := exec.LookPath("sgdisk"); err != nil {
		t.Fatalf("sgdisk (package gdisk, scripts/install-deps.sh) is needed: %v", err)
	}
	out, err := exec.Command("sgdisk", "-v", p).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "No problems found") {
		t.Errorf("sgdisk -v: %v\n%s", err, out)
	}
	return string(out)
}

func fileSum(t *testing.T, p string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// replaceField rewrites "field=value" on the line of partition node.
func replaceField(dump, node, field, value string) string {
	re := regexp.MustCompile(`(?m)^(` + regexp.QuoteMeta(node) + ` : .*\b` + field + `=)[^,\n]+`)
	return re.ReplaceAllString(dump, "${1}"+value)
}

const gptScript = `label: gpt
label-id: 5E4D1C2B-1111-4222-8333-944455556666
start=2048, size=2048, type=21686148-6449-6E6F-744E-656564454649, uuid=0A1B2C3D-0000-4000-8000-000000000001, name="BIOS boot", attrs="LegacyBIOSBootable"
start=4096, size=8192, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=0A1B2C3D-0000-4000-8000-000000000002, name="EFI System", attrs="RequiredPartition"
start=12288, size=20480, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=0A1B2C3D-0000-4000-8000-000000000003, name="root ü", attrs="GUID:59,60"
`

func TestGrowGPTIntoGrownDisk(t *testing.T) {
	const mib = 1 << 20
	p := partitionedDisk(t, 32*mib, gptScript)
	before := sfdiskDump(t, p)
	if err := os.Truncate(p, 64*mib); err != nil {
		t.Fatal(err)
	}
	res, err := growFile(t, p, 512, 3)
	if err != nil {
		t.Fatal(err)
	}
	const sectors = 64 * mib / 512
	lastUsable := uint64(sectors - 34) // 32 sectors of entries and the backup header
	want := proto.GrowPartitionResult{Table: proto.TableGPT, SectorSize: 512, Start: 12288, OldEnd: 12288 + 20480 - 1,
		NewEnd: lastUsable, BackupMoved: true, Changed: true}
	if res != want {
		t.Errorf("result %+v, want %+v", res, want)
	}
	sfdiskVerify(t, p)
	sgdiskVerify(t, p)
	// Everything but the partition's size and the last usable sector is
	// as sfdisk wrote it: every GUID, type, name and attribute.
	wantDump := replaceField(before, p+"3", "size", strconv.FormatUint(lastUsable-12288+1, 10))
	wantDump = regexp.MustCompile(`(?m)^last-lba: \d+`).ReplaceAllString(wantDump, "last-lba: "+strconv.FormatUint(lastUsable, 10))
	if got := sfdiskDump(t, p); got != wantDump {
		t.Errorf("table after growing:\n%s\nwant:\n%s", got, wantDump)
	}
	// The protective MBR covers the whole grown disk.
	lba0 := make([]byte, 512)
	f, _ := os.Open(p)
	_, _ = f.ReadAt(lba0, 0)
	f.Close()
	if got := binary.LittleEndian.Uint32(lba0[446+12:]); got != sectors-1 {
		t.Errorf("protective MBR covers %d sectors, want %d", got, sectors-1)
	}

	// Again: nothing left to do, nothing written.
	sum := fileSum(t, p)
	res, err = growFile(t, p, 512, 3)
	if err != nil || res.Changed || res.NewEnd != lastUsable {
		t.Errorf("second grow: %+v, %v; want unchanged", res, err)
	}
	if fileSum(t, p) != sum {
		t.Error("an unchanged grow wrote to the disk")
	}
}

func TestGrowGPTSameDisk(t *testing.T) {
	// The disk did not grow but the partition stops short of its end.
	p := partitionedDisk(t, 64<<20, gptScript)
	res, err := growFile(t, p, 512, 3)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Changed || res.BackupMoved || res.NewEnd != 64<<20/512-34 {
		t.Errorf("result %+v: want grown to the last usable sector, backup left", res)
	}
	sfdiskVerify(t, p)
	sgdiskVerify(t, p)
}

// TestGrowGPT4KSectors: sfdisk sees the file through a loop device of
// 4 KiB logical sectors (it has no option for a file's sector size).
func TestGrowGPT4KSectors(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for a loop device")
	}
	const script = `label: gpt
start=256, size=512, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="esp"
start=768, size=1024, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="root"
`
	p := filepath.Join(t.TempDir(), "disk4k.raw")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, 16<<20); err != nil {
		t.Fatal(err)
	}
	// A fresh loop device each time: one keeps the size it had when set up.
	loop := func() string {
		out, err := exec.Command("losetup", "-f", "--show", "--sector-size", "4096", p).Output()
		if err != nil {
			t.Fatalf("losetup: %v", err)
		}
		dev := strings.TrimSpace(string(out))
		t.Cleanup(func() { _ = exec.Command("losetup", "-d", dev).Run() })
		return dev
	}
	dev := loop()
	sfdiskWrite(t, dev, script)
	before := strings.ReplaceAll(sfdiskDump(t, dev), dev, "DISK")
	if err := exec.Command("losetup", "-d", dev).Run(); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, 32<<20); err != nil {
		t.Fatal(err)
	}
	res, err := growFile(t, p, 4096, 2)
	if err != nil {
		t.Fatal(err)
	}
	// 4 sectors of 4 KiB hold the 128 entries, one the backup header.
	const lastUsable = 32<<20/4096 - 6
	if !res.Changed || !res.BackupMoved || res.NewEnd != lastUsable {
		t.Errorf("result %+v, want the end at %d", res, lastUsable)
	}
	dev = loop()
	sfdiskVerify(t, dev)
	wantDump := replaceField(before, "DISKp2", "size", strconv.Itoa(lastUsable-768+1))
	wantDump = regexp.MustCompile(`(?m)^last-lba: \d+`).ReplaceAllString(wantDump, "last-lba: "+strconv.Itoa(lastUsable))
	if got := strings.ReplaceAll(sfdiskDump(t, dev), dev, "DISK"); got != wantDump {
		t.Errorf("table after growing:\n%s\nwant:\n%s", got, wantDump)
	}
}

func TestGrowRefusals(t *testing.T) {
	const mib = 1 << 20
	mbrExtended := `label: dos
start=2048, size=4096, type=83
start=6144, size=8192, type=5
start=8192, size=2048, type=83
`
	for _, c := range []struct {
		name, script string
		number       int
		shrink       bool
		want         string
	}{
		{"gpt not last", gptScript, 2, false, "partition 3 (\"root ü\", sectors 12288-32767) follows partition 2"},
		{"gpt missing", gptScript, 7, false, "partition 7 is not in the GPT"},
		{"gpt shrunk disk", gptScript, 3, true, "smaller than its GPT says"},
		{"mbr before extended", mbrExtended, 1, false, "extended partition 2 (sectors 6144-14335) follows partition 1"},
		{"mbr extended", mbrExtended, 2, false, "partition 2 is the MBR's extended partition"},
		{"mbr logical", mbrExtended, 5, false, "partition 5 is a logical partition"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := partitionedDisk(t, 32*mib, c.script)
			size := int64(64 * mib)
			if c.shrink {
				size = 31 * mib
			}
			if err := os.Truncate(p, size); err != nil {
				t.Fatal(err)
			}
			sum := fileSum(t, p)
			_, err := growFile(t, p, 512, c.number)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one saying %q", err, c.want)
			}
			if fileSum(t, p) != sum {
				t.Error("a refused grow wrote to the disk")
			}
		})
	}
	t.Run("no table", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "blank.raw")
		if err := os.WriteFile(p, make([]byte, 1<<20), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := growFile(t, p, 512, 1); err != errNoTable {
			t.Errorf("error %v, want %v", err, errNoTable)
		}
	})
}

func TestGrowMBR(t *testing.T) {
	const mib = 1 << 20
	const script = `label: dos
label-id: 0x1234abcd
start=2048, size=4096, type=83, bootable
start=6144, size=16384, type=8e
`
	p := partitionedDisk(t, 32*mib, script)
	before := sfdiskDump(t, p)
	if err := os.Truncate(p, 64*mib); err != nil {
		t.Fatal(err)
	}
	res, err := growFile(t, p, 512, 2)
	if err != nil {
		t.Fatal(err)
	}
	const sectors = 64 * mib / 512
	want := proto.GrowPartitionResult{Table: proto.TableMBR, SectorSize: 512, Start: 6144, OldEnd: 6144 + 16384 - 1, NewEnd: sectors - 1, Changed: true}
	if res != want {
		t.Errorf("result %+v, want %+v", res, want)
	}
	sfdiskVerify(t, p)
	if got, want := sfdiskDump(t, p), replaceField(before, p+"2", "size", strconv.Itoa(sectors-6144)); got != want {
		t.Errorf("table after growing:\n%s\nwant:\n%s", got, want)
	}
	sum := fileSum(t, p)
	if res, err := growFile(t, p, 512, 2); err != nil || res.Changed {
		t.Errorf("second grow: %+v, %v; want unchanged", res, err)
	}
	if fileSum(t, p) != sum {
		t.Error("an unchanged grow wrote to the disk")
	}
}

// TestGrowRefusesHostileGPT: a header, checksum and all, that go-diskfs
// would loop on, allocate without bound for, or write somewhere else of
// the disk because of, is refused before go-diskfs sees it.
func TestGrowRefusesHostileGPT(t *testing.T) {
	for _, c := range []struct {
		name  string
		off   int
		value uint64
		size  int
		want  string
	}{
		{"entry size 0", 84, 0, 4, "entries of 0 bytes"},
		{"entries unbounded", 80, 1 << 31, 4, "2147483648 partition entries"},
		{"my LBA elsewhere", 24, 4000, 8, "at sector 4000"},
		{"array elsewhere", 72, 40, 8, "starts at sector 40"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := partitionedDisk(t, 32<<20, gptScript)
			f, err := os.OpenFile(p, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			// The header checksum is right: only the field is hostile.
			hdr := make([]byte, 92)
			if _, err := f.ReadAt(hdr, 512); err != nil {
				t.Fatal(err)
			}
			b := make([]byte, 8)
			binary.LittleEndian.PutUint64(b, c.value)
			copy(hdr[c.off:c.off+c.size], b)
			clear(hdr[16:20])
			binary.LittleEndian.PutUint32(hdr[16:20], crc32.ChecksumIEEE(hdr))
			if _, err := f.WriteAt(hdr, 512); err != nil {
				t.Fatal(err)
			}
			f.Close()
			sum := fileSum(t, p)
			if _, err := growFile(t, p, 512, 3); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one saying %q", err, c.want)
			}
			if fileSum(t, p) != sum {
				t.Error("a refused grow wrote to the disk")
			}
		})
	}
}

// FuzzGrowPartitionTable grows partitions of hostile disks whose first
// sectors are the input: it ends; a refusal writes nothing; a grow leaves
// a table that reads back and needs nothing more.
func FuzzGrowPartitionTable(f *testing.F) {
	// Seeds: sfdisk's own tables of small disks (the first 40 sectors).
	for _, script := range []string{
		"label: gpt\nstart=34, size=100, name=\"a\"\nstart=134, size=100, name=\"b\", attrs=\"GUID:60\"\n",
		"label: dos\nstart=1, size=100, type=83, bootable\nstart=101, size=100, type=83\n",
		"label: dos\nstart=1, size=100, type=83\nstart=101, size=200, type=5\nstart=102, size=50, type=83\n",
	} {
		p := partitionedDisk(f, 256<<10, script)
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b[:40*512], uint8(2))
	}
	f.Fuzz(func(t *testing.T, head []byte, number uint8) {
		if len(head) > 64*512 {
			head = head[:64*512]
		}
		p := filepath.Join(t.TempDir(), "disk.raw")
		// The disk is twice its head: the rest is new, zeroed space.
		if err := os.WriteFile(p, append(head, make([]byte, len(head)+1024)...), 0o600); err != nil {
			t.Fatal(err)
		}
		sum := fileSum(t, p)
		res, err := growFile(t, p, 512, int(number))
		if err != nil {
			if fileSum(t, p) != sum {
				t.Fatalf("refused (%v) but wrote to the disk", err)
			}
			return
		}
		if res.Changed {
			if res.NewEnd < res.OldEnd {
				t.Fatalf("shrank: %+v", res)
			}
			sum := fileSum(t, p)
			again, err := growFile(t, p, 512, int(number))
			if err != nil || again.Changed || again.NewEnd != res.NewEnd {
				t.Fatalf("after %+v a second grow gave %+v, %v", res, again, err)
			}
			if fileSum(t, p) != sum {
				t.Fatal("the second grow wrote to the disk")
			}
		}
	})
}

// TestGrowPast2TiB: a GPT disk beyond what 32-bit MBR fields address gets
// a protective MBR of the maximum size; an MBR partition that would need
// more than 2^32-1 sectors is refused, nothing written.
func TestGrowPast2TiB(t *testing.T) {
	const big = 3 << 40 // sparse
	headSum := func(p string) [32]byte {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		b := make([]byte, 1<<20)
		if _, err := f.ReadAt(b, 0); err != nil {
			t.Fatal(err)
		}
		return sha256.Sum256(b)
	}
	t.Run("gpt", func(t *testing.T) {
		p := partitionedDisk(t, 32<<20, gptScript)
		if err := os.Truncate(p, big); err != nil {
			t.Fatal(err)
		}
		res, err := growFile(t, p, 512, 3)
		if err != nil {
			t.Fatal(err)
		}
		if res.NewEnd != big/512-34 {
			t.Errorf("result %+v, want the end at %d", res, big/512-34)
		}
		sfdiskVerify(t, p)
		sgdiskVerify(t, p)
		lba0 := make([]byte, 512)
		f, _ := os.Open(p)
		_, _ = f.ReadAt(lba0, 0)
		f.Close()
		if got := binary.LittleEndian.Uint32(lba0[446+12:]); got != 0xffffffff {
			t.Errorf("protective MBR covers %#x sectors, want 0xffffffff", got)
		}
	})
	t.Run("mbr", func(t *testing.T) {
		p := partitionedDisk(t, 32<<20, "label: dos\nstart=2048, size=4096, type=83\n")
		if err := os.Truncate(p, big); err != nil {
			t.Fatal(err)
		}
		sum := headSum(p)
		if _, err := growFile(t, p, 512, 1); err == nil || !strings.Contains(err.Error(), "at most 2^32-1 sectors") {
			t.Errorf("error %v, want a refusal naming the MBR's limit", err)
		}
		if headSum(p) != sum {
			t.Error("a refused grow wrote to the disk")
		}
	})
}
