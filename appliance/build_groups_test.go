package appliance

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/imgbake/imgbake/appliance/kernel"
	"github.com/imgbake/imgbake/appliance/proto"
)

// TestResolveGroupsSharedDependency: btrfs and xfs both need libcrc32c;
// each group lists it, so either loads on its own (a cold boot mounting
// btrfs first failed with ENODEV when only xfs's group had it), while what
// the boot group loads is not repeated.
func TestResolveGroupsSharedDependency(t *testing.T) {
	dir := t.TempDir()
	dep := `kernel/fs/xfs/xfs.ko: kernel/lib/libcrc32c.ko
kernel/fs/btrfs/btrfs.ko: kernel/crypto/xor.ko kernel/lib/raid6/raid6_pq.ko kernel/lib/zstd/zstd_compress.ko kernel/lib/libcrc32c.ko
kernel/crypto/xor.ko:
kernel/lib/raid6/raid6_pq.ko:
kernel/lib/zstd/zstd_compress.ko:
kernel/lib/libcrc32c.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio.ko
kernel/drivers/virtio/virtio.ko:
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko
`
	if err := os.WriteFile(filepath.Join(dir, "modules.dep"), []byte(dep), 0o644); err != nil {
		t.Fatal(err)
	}
	idx, err := kernel.LoadModules(dir)
	if err != nil {
		t.Fatal(err)
	}
	groups, err := resolveGroups(idx)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]string{}
	for _, g := range groups {
		files[g.group] = g.files
	}
	wantBtrfs := []string{"kernel/lib/libcrc32c.ko", "kernel/lib/zstd/zstd_compress.ko", "kernel/lib/raid6/raid6_pq.ko",
		"kernel/crypto/xor.ko", "kernel/fs/btrfs/btrfs.ko"}
	if !slices.Equal(files["btrfs"], wantBtrfs) {
		t.Errorf("btrfs group = %v, want %v", files["btrfs"], wantBtrfs)
	}
	if want := []string{"kernel/lib/libcrc32c.ko", "kernel/fs/xfs/xfs.ko"}; !slices.Equal(files["xfs"], want) {
		t.Errorf("xfs group = %v, want %v", files["xfs"], want)
	}
	boot := files[proto.ModulesBoot]
	if !slices.Contains(boot, "kernel/drivers/virtio/virtio.ko") {
		t.Errorf("boot group = %v, want virtio.ko in it", boot)
	}
	for g, fs := range files {
		if g != proto.ModulesBoot && slices.Contains(fs, "kernel/drivers/virtio/virtio.ko") {
			t.Errorf("group %s repeats a boot module: %v", g, fs)
		}
	}
}
