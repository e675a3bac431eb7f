package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/internal/bootvm"
	"github.com/imgbake/imgbake/internal/vmtest"
	"github.com/imgbake/imgbake/testimages"
)

// guestBootTimeout bounds one clone's boot until sshd accepts the key: a
// systemd boot under TCG takes 20 s on an idle machine, minutes when other
// VM tests share the cores.
const guestBootTimeout = 6 * time.Minute

// bootedGuest is one clone running under QEMU (internal/bootvm), sshd
// forwarded to a localhost port.
type bootedGuest struct{ *bootvm.Guest }

// bootClone boots disk (a qcow2) with QEMU's direct kernel boot, TCG
// only; qemu is killed and reaped when the test ends, whatever happened.
func bootClone(t *testing.T, name, disk, kernel, initrd, rootUUID, dir string) *bootedGuest {
	t.Helper()
	g, err := bootvm.Start(bootvm.Options{Name: name, Disk: disk, Format: "qcow2", Kernel: kernel, Initrd: initrd, RootUUID: rootUUID, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Stop)
	return &bootedGuest{g}
}

// sshArgs are the ssh options that touch nothing of the host's ssh setup.
func sshArgs(key string, port int) []string { return bootvm.SSHArgs(key, port) }

// waitForLogin runs command over ssh as root until the login works and
// returns its output; it fails the test when qemu exits or
// guestBootTimeout passes first.
func (g *bootedGuest) waitForLogin(t *testing.T, key, command string) string {
	t.Helper()
	start := time.Now()
	out, err := g.WaitForLogin(context.Background(), key, command, guestBootTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: ssh login after %v", g.Name, time.Since(start).Round(time.Second))
	return out
}

// ssh runs command in the guest as root.
func (g *bootedGuest) ssh(key, command string) ([]byte, error) {
	return g.SSH(context.Background(), key, command)
}

var machineIDFormat = regexp.MustCompile(`^[0-9a-f]{32}$`)

// firstbootScript is where sysprep's first-boot key generation lands once it has run.
const firstbootScript = fsops.FirstbootDir + "/scripts-done/0001-sysprep-ssh-hostkeys"

// TestSysprepClonesBoot is issue 18's end-to-end check: the bootable test
// image gets a root ssh key (a recipe) and is sysprep'd; two clones of it
// (qcow2 overlays) really boot under TCG with the image's own kernel and
// initramfs, sshd accepts the key, and each clone has its own machine-id
// and its own ssh host key, neither the golden image's, the one sshd
// presents being the one on disk.
func TestSysprepClonesBoot(t *testing.T) {
	vmTests(t)
	for tool, pkg := range map[string]string{"ssh": "openssh-client", "ssh-keygen": "openssh-client", "ssh-keyscan": "openssh-client", "qemu-img": "qemu-utils"} {
		vmtest.LookPath(t, tool, pkg)
	}
	tmp := privateTmp(t)
	t.Cleanup(func() { noLeftovers(t, tmp) }) // runs after the qemus' cleanups
	info := testimages.InfoOf(t, testimages.Boot)
	golden := testimages.Fresh(t, testimages.Boot)
	dir := t.TempDir()

	goldenKeys, err := testimages.ReadFiles(t, golden, "qcow2", 0, "/etc/machine-id", "/etc/ssh/ssh_host_ed25519_key.pub")
	must(t, err)
	goldenHostKey := strings.TrimSpace(string(goldenKeys["/etc/ssh/ssh_host_ed25519_key.pub"]))
	if goldenHostKey == "" || strings.TrimSpace(string(goldenKeys["/etc/machine-id"])) != info.MachineID {
		t.Fatalf("the test image should come with a host key and machine-id %s: %q", info.MachineID, goldenKeys)
	}

	key := filepath.Join(dir, "id_ed25519")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "imgbake-test", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	recipe := writeRecipe(t, fmt.Sprintf("name: root ssh key\nsteps:\n  - ssh_inject: {user: root, file: %q}\n", key+".pub"))
	if r := imgbake(t, "run", "-a", golden, recipe); r.code != ExitOK {
		t.Fatalf("installing the ssh key: %s", r)
	}
	start := time.Now()
	r := imgbake(t, "sysprep", "-a", golden)
	if r.code != ExitOK {
		t.Fatalf("sysprep: %s", r)
	}
	for _, want := range []string{"machine-id: emptied /etc/machine-id", "ssh-hostkeys: 6 removed, new keys at first boot"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("sysprep's output lacks %q:\n%s", want, r)
		}
	}
	t.Logf("sysprep took %v", time.Since(start).Round(time.Second))

	// "Its own kernel": the kernel and initramfs are read out of the
	// sysprep'd image, not taken from the host.
	boot, err := testimages.ReadFiles(t, golden, "qcow2", 0, info.Kernel, info.Initrd)
	must(t, err)
	kernel, initrd := filepath.Join(dir, "vmlinuz"), filepath.Join(dir, "initrd.img")
	for p, data := range map[string][]byte{kernel: boot[info.Kernel], initrd: boot[info.Initrd]} {
		if len(data) == 0 {
			t.Fatalf("the image has no %s or %s", info.Kernel, info.Initrd)
		}
		must(t, os.WriteFile(p, data, 0o644))
	}

	// Both clones boot at once: each qemu is one TCG thread.
	start = time.Now()
	var guests []*bootedGuest
	for _, name := range []string{"clone1", "clone2"} {
		clone := filepath.Join(dir, name+".qcow2")
		if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", golden, clone).CombinedOutput(); err != nil {
			t.Fatalf("qemu-img create %s: %v: %s", clone, err, out)
		}
		guests = append(guests, bootClone(t, name, clone, kernel, initrd, info.RootUUID, dir))
	}
	type identity struct{ machineID, hostKey, presented string }
	var ids []identity
	for _, g := range guests {
		out := g.waitForLogin(t, key, "cat /etc/machine-id /etc/ssh/ssh_host_ed25519_key.pub")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 2 {
			t.Fatalf("%s: want the machine-id and the host key, got:\n%s", g.Name, out)
		}
		id := identity{machineID: strings.TrimSpace(lines[0]), hostKey: strings.TrimSpace(lines[1])}
		scan, err := exec.Command("ssh-keyscan", "-t", "ed25519", "-p", strconv.Itoa(g.Port), "127.0.0.1").Output()
		if err != nil {
			t.Fatalf("%s: ssh-keyscan: %v", g.Name, err)
		}
		// ssh-keyscan prints "[127.0.0.1]:PORT ssh-ed25519 AAAA..."
		if f := strings.Fields(string(scan)); len(f) >= 3 {
			id.presented = f[1] + " " + f[2]
		}
		if !machineIDFormat.MatchString(id.machineID) {
			t.Errorf("%s: machine-id %q is not 32 hex digits", g.Name, id.machineID)
		}
		if id.machineID == info.MachineID {
			t.Errorf("%s: machine-id %s is the golden image's", g.Name, id.machineID)
		}
		keyFields := strings.Fields(id.hostKey)
		if len(keyFields) < 2 || keyFields[0] != "ssh-ed25519" {
			t.Errorf("%s: /etc/ssh/ssh_host_ed25519_key.pub = %q", g.Name, id.hostKey)
		} else if id.presented != keyFields[0]+" "+keyFields[1] {
			t.Errorf("%s: sshd presents %q, the key on disk is %q", g.Name, id.presented, id.hostKey)
		}
		// The keys are sysprep's first-boot hook's doing: it ran, succeeded
		// and sshd runs with its keys.
		if out, err := g.ssh(key, "test -f "+firstbootScript+" && grep -qx '=== Exit code: 0 ===' /root/imgbake-firstboot.log && systemctl is-active ssh.service"); err != nil {
			log, _ := g.ssh(key, "ls -l "+fsops.FirstbootDir+"/scripts "+fsops.FirstbootDir+"/scripts-done; cat /root/imgbake-firstboot.log; systemctl status ssh.service")
			t.Errorf("%s: the first-boot key generation did not run or failed: %v: %s\n%s", g.Name, err, out, log)
		}
		if id.hostKey == goldenHostKey {
			t.Errorf("%s: the host key is the golden image's: %s", g.Name, id.hostKey)
		}
		ids = append(ids, id)
	}
	t.Logf("both clones booted and logged in %v after the first qemu started", time.Since(start).Round(time.Second))
	if ids[0].machineID == ids[1].machineID {
		t.Errorf("both clones have machine-id %s", ids[0].machineID)
	}
	if ids[0].hostKey == ids[1].hostKey {
		t.Errorf("both clones have host key %s", ids[0].hostKey)
	}
	t.Logf("clone1: %s %s; clone2: %s %s", ids[0].machineID, ids[0].hostKey, ids[1].machineID, ids[1].hostKey)
}
