package appliance

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imgbake/imgbake/appliance/proto"
	"github.com/imgbake/imgbake/testimages"
)

// warmApp builds the appliance into a private cache, so these tests own
// their snapshot files.
func warmApp(t *testing.T) *Appliance {
	t.Helper()
	t.Setenv("IMGBAKE_CACHE_DIR", t.TempDir())
	t.Setenv("IMGBAKE_COLD", "")
	return vmTest(t)
}

// startOn starts a session on disk, mounts it and returns it.
func startOn(t *testing.T, app *Appliance, disk string, opts ...Option) *Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s, err := Start(ctx, app, append([]Option{WithDisk(disk, "raw", false), WithVerbose(t.Logf)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Mount(ctx, proto.MountArgs{}); err != nil {
		s.Kill()
		t.Fatal(err)
	}
	return s
}

func shellOut(t *testing.T, s *Session, cmd string) string {
	t.Helper()
	var out, errb strings.Builder
	r, err := s.Exec(context.Background(), proto.ExecArgs{Shell: cmd}, nil, &out, &errb)
	if err != nil || r.RC != 0 {
		t.Fatalf("%s: rc %d, %v: %s", cmd, r.RC, err, errb.String())
	}
	return strings.TrimSpace(out.String())
}

func snapshotOf(t *testing.T, app *Appliance) string {
	t.Helper()
	p, _, err := SnapshotInfo(app, 512, false)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return p
}

// TestWarmStart: the second start restores the saved appliance; restored
// guests get the host's time and fresh randomness each time.
func TestWarmStart(t *testing.T) {
	app := warmApp(t)
	var randoms []string
	for i := 0; i < 3; i++ {
		disk := testimages.Fresh(t, testimages.NoPart)
		s := startOn(t, app, disk)
		if !s.Timings.Warm {
			t.Errorf("start %d was not warm (the first saves the snapshot, then restores it)", i+1)
		}
		guest, _ := strconv.ParseInt(shellOut(t, s, "date +%s"), 10, 64)
		if d := time.Now().Unix() - guest; d > 5 || d < -5 {
			t.Errorf("restored guest clock is off by %ds", d)
		}
		randoms = append(randoms, shellOut(t, s, "head -c 16 /dev/urandom | od -An -tx1"))
		checkFreshNode(t, s)
		t.Logf("start %d: warm %v, ready %s", i+1, s.Timings.Warm, s.Timings.Ready)
		if err := s.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if randoms[1] == randoms[2] || randoms[0] == randoms[1] {
		t.Errorf("restored guests repeat their random state: %q", randoms)
	}
}

// checkFreshNode: a restored appliance has the fresh-memory NUMA node, its
// commands prefer it, and the page cache of what they write lands there.
func checkFreshNode(t *testing.T, s *Session) {
	t.Helper()
	if _, fresh := warmSplit(512); fresh == 0 {
		t.Fatal("a 512 MiB appliance should have a fresh-memory node")
	}
	if got := shellOut(t, s, "cat /sys/devices/system/node/online"); got != "0-1" {
		t.Errorf("NUMA nodes online: %q, want 0-1", got)
	}
	if got := shellOut(t, s, "head -1 /proc/self/numa_maps"); !strings.Contains(got, "prefer:1") {
		t.Errorf("a command's memory policy: %q, want prefer:1", got)
	}
	filePages := func() int {
		out := shellOut(t, s, "grep FilePages /sys/devices/system/node/node1/meminfo")
		f := strings.Fields(out)
		kb, err := strconv.Atoi(f[len(f)-2])
		if err != nil {
			t.Fatalf("node 1 meminfo: %q", out)
		}
		return kb
	}
	before := filePages()
	shellOut(t, s, "dd if=/dev/zero of=/root/fresh bs=1M count=32 2>/dev/null")
	if after := filePages(); after-before < 24<<10 {
		t.Errorf("node 1 file pages grew by %d KiB after writing 32 MiB, want most of it there", after-before)
	}
	shellOut(t, s, "rm -f /root/fresh")
}

func TestWarmSplit(t *testing.T) {
	for _, tc := range []struct{ mem, file, fresh int }{
		{512, 256, 256}, {1024, 256, 768}, {2048, 256, 1792},
		{384, 256, 128}, {256, 256, 0}, {320, 320, 0}, {500, 372, 128}, {128, 128, 0},
	} {
		file, fresh := warmSplit(tc.mem)
		if file != tc.file || fresh != tc.fresh || file+fresh != tc.mem {
			t.Errorf("warmSplit(%d) = %d, %d; want %d, %d", tc.mem, file, fresh, tc.file, tc.fresh)
		}
		args := strings.Join(warmArgs(tc.mem, applianceCPUs, "/x", false), " ")
		if hasNUMA := strings.Contains(args, "-numa"); hasNUMA != (tc.fresh > 0) {
			t.Errorf("warmArgs(%d): %s", tc.mem, args)
		}
	}
}

// TestWarmFallback: a truncated state file, a failed hot-plug and a
// different machine all end in a working appliance, never an error.
func TestWarmFallback(t *testing.T) {
	app := warmApp(t)
	disk := testimages.Fresh(t, testimages.NoPart)
	s := startOn(t, app, disk)
	s.Close(context.Background())
	snap := snapshotOf(t, app)
	state := filepath.Join(snap, snapshotState)
	fi, err := os.Stat(state)
	if err != nil {
		t.Fatalf("no snapshot after the first start: %v", err)
	}

	// Truncated state: cold boot, and the bad snapshot is dropped.
	if err := os.Truncate(state, fi.Size()/2); err != nil {
		t.Fatal(err)
	}
	s = startOn(t, app, disk)
	if s.Timings.Warm {
		t.Error("a truncated snapshot was used")
	}
	if shellOut(t, s, "cat /etc/hostname") != "testhost" {
		t.Error("the cold fallback does not see the image")
	}
	s.Close(context.Background())
	if _, err := os.Stat(snap); err == nil {
		t.Error("the truncated snapshot was kept")
	}

	// Next start saves a fresh one and is warm again.
	s = startOn(t, app, disk)
	if !s.Timings.Warm {
		t.Error("no warm start after the snapshot was rebuilt")
	}
	s.Close(context.Background())

	// A truncated memory file: cold boot, snapshot dropped, then rebuilt.
	ram := filepath.Join(snap, snapshotRAM)
	if err := os.Truncate(ram, 64<<20); err != nil {
		t.Fatal(err)
	}
	s = startOn(t, app, disk)
	if s.Timings.Warm {
		t.Error("a truncated memory file was used")
	}
	s.Close(context.Background())
	s = startOn(t, app, disk)
	if !s.Timings.Warm {
		t.Error("no warm start after the snapshot was rebuilt")
	}
	s.Close(context.Background())
	// Restores map the memory privately: the file never changes.
	ramBefore := fileSum(t, ram)
	s = startOn(t, app, disk)
	shellOut(t, s, "head -c 33554432 /dev/urandom > /root/fill && sync")
	s.Close(context.Background())
	if fileSum(t, ram) != ramBefore {
		t.Error("a restore changed the snapshot's memory file")
	}

	// A failed hot-plug: cold boot.
	hotplugFault = func() error { return errors.New("injected hot-plug failure") }
	s = startOn(t, app, disk)
	hotplugFault = nil
	if s.Timings.Warm {
		t.Error("warm start reported despite a failed hot-plug")
	}
	if shellOut(t, s, "cat /etc/hostname") != "testhost" {
		t.Error("the cold fallback does not see the image")
	}
	s.Close(context.Background())

	// A different machine (memory size) is a different key: its own
	// snapshot, the other one untouched.
	s = startOn(t, app, disk)
	s.Close(context.Background())
	before, _ := os.Stat(state)
	s = startOn(t, app, disk, WithMemory(384))
	s.Close(context.Background())
	other, _, err := SnapshotInfo(app, 384, false)
	if err != nil || other == snap {
		t.Errorf("384 MiB snapshot %s (%v) should differ from %s", other, err, snap)
	}
	if after, _ := os.Stat(state); before == nil || after == nil || !after.ModTime().Equal(before.ModTime()) {
		t.Error("a start with another memory size touched the 512 MiB snapshot")
	}
}

// fileSum is the sha256 of a file (the 512 MiB memory file, streamed).
func fileSum(t *testing.T, path string) string {
	t.Helper()
	h := sha256.New()
	if err := hashFile(h, path); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}
