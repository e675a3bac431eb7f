package kernel

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestResolve(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"modules.dep": `kernel/fs/xfs/xfs.ko: kernel/lib/libcrc32c.ko
kernel/lib/libcrc32c.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio.ko:
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/fs/nls/nls_iso8859-1.ko:
kernel/fs/vfat/vfat.ko.xz: kernel/fs/fat/fat.ko.xz
kernel/fs/fat/fat.ko.xz:
`,
		"modules.builtin": "kernel/fs/ext4/ext4.ko\nkernel/lib/crc32c_generic.ko\n",
	})
	m, err := LoadModules(dir)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	got := m.Resolve([]string{"virtio_pci", "virtio-blk", "ext4", "unknown", "xfs", "nls_iso8859_1"}, seen)
	want := []string{
		"kernel/drivers/virtio/virtio_ring.ko", "kernel/drivers/virtio/virtio.ko",
		"kernel/drivers/virtio/virtio_pci_modern_dev.ko", "kernel/drivers/virtio/virtio_pci_legacy_dev.ko",
		"kernel/drivers/virtio/virtio_pci.ko", "kernel/drivers/block/virtio_blk.ko",
		"kernel/lib/libcrc32c.ko", "kernel/fs/xfs/xfs.ko", "kernel/fs/nls/nls_iso8859-1.ko",
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("got  %v\nwant %v", got, want)
	}
	// A later call shares what an earlier one resolved.
	if got := m.Resolve([]string{"xfs", "vfat"}, seen); strings.Join(got, " ") != "kernel/fs/fat/fat.ko.xz kernel/fs/vfat/vfat.ko.xz" {
		t.Errorf("second group: %v", got)
	}
	if got := m.Resolve([]string{"crc32c_generic"}, nil); len(got) != 0 {
		t.Errorf("a built-in module resolved to %v", got)
	}
}

func TestFind(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "vmlinuz-9.9.9-test")
	if err := os.WriteFile(img, []byte("kernel"), 0o644); err != nil {
		t.Fatal(err)
	}
	mods := writeTree(t, map[string]string{"modules.dep": ""})
	t.Setenv("IMGBAKE_KERNEL", img)
	t.Setenv("IMGBAKE_KERNEL_MODULES", mods)
	k, err := Find("")
	if err != nil {
		t.Fatal(err)
	}
	if k != (Kernel{Image: img, Version: "9.9.9-test", ModulesDir: mods}) {
		t.Errorf("found %+v", k)
	}

	t.Setenv("IMGBAKE_KERNEL_MODULES", "")
	if _, err := Find(""); !errors.Is(err, ErrNoKernel) || !strings.Contains(err.Error(), "/lib/modules/9.9.9-test") {
		t.Errorf("no module tree: %v", err)
	}
	if _, err := Find(filepath.Join(dir, "vmlinuz-missing")); !errors.Is(err, ErrNoKernel) || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing kernel: %v", err)
	}
}
