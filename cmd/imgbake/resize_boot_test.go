package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/imgbake/imgbake/internal/vmtest"
	"github.com/imgbake/imgbake/testimages"
)

// TestResizeBoots: the bootable test image grown by 1 GiB (its filesystem
// fills the whole disk) still boots with its own kernel, and the booted
// system sees the larger root.
func TestResizeBoots(t *testing.T) {
	vmTests(t)
	for tool, pkg := range map[string]string{"ssh": "openssh-client", "ssh-keygen": "openssh-client", "qemu-img": "qemu-utils"} {
		vmtest.LookPath(t, tool, pkg)
	}
	info := testimages.InfoOf(t, testimages.Boot)
	disk := testimages.Fresh(t, testimages.Boot)
	dir := t.TempDir()
	key := filepath.Join(dir, "id_ed25519")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "imgbake-test", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	recipe := writeRecipe(t, "steps:\n  - ssh_inject: {user: root, file: \""+key+".pub\"}\n")
	if r := imgbake(t, "run", "-a", disk, recipe); r.code != ExitOK {
		t.Fatalf("installing the ssh key: %s", r)
	}
	if r := imgbake(t, "resize", "-a", disk, "--size", "+1G"); r.code != ExitOK {
		t.Fatalf("resize: %s", r)
	}
	boot, err := testimages.ReadFiles(t, disk, "qcow2", 0, info.Kernel, info.Initrd)
	must(t, err)
	kernel, initrd := filepath.Join(dir, "vmlinuz"), filepath.Join(dir, "initrd.img")
	must(t, os.WriteFile(kernel, boot[info.Kernel], 0o644))
	must(t, os.WriteFile(initrd, boot[info.Initrd], 0o644))
	g := bootClone(t, "grown", disk, kernel, initrd, info.RootUUID, dir)
	out := g.waitForLogin(t, key, "df -k --output=size / | tail -1")
	kb, err := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
	if err != nil {
		t.Fatalf("df in the booted image: %q", out)
	}
	// 2 GiB before, 3 GiB after, less the filesystem's own metadata.
	if kb < 2900<<10 {
		t.Errorf("the booted system sees a %d KiB root, want about 3 GiB", kb)
	}
}
