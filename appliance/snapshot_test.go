package appliance

import (
	"context"
	"errors"
	"io/fs"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imgbake/imgbake/appliance/proto"
	"github.com/imgbake/imgbake/testimages"
)

// TestSnapshotDisk freezes the mounted image, puts a new overlay on its
// disk and thaws: the old top keeps the state at the snapshot, the new one
// everything after, read back with debugfs.
func TestSnapshotDisk(t *testing.T) {
	app := vmTest(t)
	base := testimages.Fresh(t, "debian-nopart.raw")
	dir := t.TempDir()
	layer := filepath.Join(dir, "layer.qcow2")
	top := filepath.Join(dir, "top.qcow2")
	qemuImg := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("qemu-img", args...).CombinedOutput(); err != nil {
			t.Fatalf("qemu-img %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	qemuImg("create", "-q", "-f", "qcow2", "-F", "raw", "-b", base, layer)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s, err := Start(ctx, app, WithDisk(layer, "qcow2", false), WithVerbose(t.Logf))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Kill()
	if _, err := s.Mount(ctx, proto.MountArgs{Disposable: true}); err != nil {
		t.Fatal(err)
	}
	write := func(p, content string) {
		t.Helper()
		if _, err := s.WriteFile(ctx, proto.WriteArgs{Path: p}, strings.NewReader(content)); err != nil {
			t.Fatal(err)
		}
	}
	write("/root/before", "before the snapshot\n")
	frozen, err := s.Freeze(ctx)
	if err != nil || len(frozen) == 0 || frozen[len(frozen)-1] != "/" {
		t.Fatalf("freeze: %v, %v", frozen, err)
	}
	qemuImg("create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", layer, top)
	if err := s.SnapshotDisk(ctx, 0, top); err != nil {
		t.Fatal(err)
	}
	if err := s.Thaw(ctx); err != nil {
		t.Fatal(err)
	}
	write("/root/after", "after the snapshot\n")
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := testimages.ReadFile(t, layer, "qcow2", 0, "/root/before")
	if err != nil || string(got) != "before the snapshot\n" {
		t.Errorf("layer /root/before = %q, %v", got, err)
	}
	if _, err := testimages.ReadFile(t, layer, "qcow2", 0, "/root/after"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("layer has /root/after: %v", err)
	}
	files, err := testimages.ReadFiles(t, top, "qcow2", 0, "/root/before", "/root/after")
	if err != nil || string(files["/root/before"]) != "before the snapshot\n" || string(files["/root/after"]) != "after the snapshot\n" {
		t.Errorf("top: %q, %v", files, err)
	}
}
