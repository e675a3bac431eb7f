package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/imgbake/imgbake/internal/vmtest"
	"github.com/imgbake/imgbake/testimages"
)

// bootedOnlyFacts are the setup module's facts that the booted image has
// and a command in the appliance cannot, each with the reason. The README
// ("Facts and tools as on a booted host") lists them too.
var bootedOnlyFacts = map[string]string{}

// interfaceFact matches the facts named after a network interface
// (ansible_eth0, ansible_enp0s3): the booted guest's udev names its NIC,
// the appliance has no network without ansible_imgbake_network.
var interfaceFact = regexp.MustCompile(`^(en|eth|wl)[a-z0-9]+$`)

// readFacts reads the ansible_facts that facts.yml wrote.
func readFacts(t *testing.T, p string) map[string]json.RawMessage {
	t.Helper()
	data, err := os.ReadFile(p)
	must(t, err)
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	// As in ansible_facts: without the ansible_ prefix of the module's result.
	facts := map[string]json.RawMessage{}
	for k, v := range raw {
		facts[strings.TrimPrefix(k, "ansible_")] = v
	}
	return facts
}

// TestSetupFactsLikeBooted: the setup module's fact keys for a disk image
// through the imgbake connection equal those of the same image booted for
// real (its own kernel, systemd, over ssh), minus bootedOnlyFacts and the
// per-interface facts; the hardware facts that need /dev/shm and
// /dev/disk (ansible_memtotal_mb, ansible_mounts, ansible_devices) are
// there.
func TestSetupFactsLikeBooted(t *testing.T) {
	tmp, _ := sessionTest(t)
	for tool, pkg := range map[string]string{"ssh": "openssh-client", "ssh-keygen": "openssh-client", "qemu-img": "qemu-utils"} {
		vmtest.LookPath(t, tool, pkg)
	}
	env := ansibleEnv(t, tmp)
	info := testimages.InfoOf(t, testimages.Boot)
	disk := testimages.Fresh(t, testimages.Boot)
	dir := t.TempDir()
	key := filepath.Join(dir, "id_ed25519")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "imgbake-test", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	recipe := writeRecipe(t, fmt.Sprintf("name: root ssh key\nsteps:\n  - ssh_inject: {user: root, file: %q}\n", key+".pub"))
	if r := imgbake(t, "run", "-a", disk, recipe); r.code != ExitOK {
		t.Fatalf("installing the ssh key: %s", r)
	}
	// The booted copy is an overlay: the disk itself stays as it was.
	boot, err := testimages.ReadFiles(t, disk, "qcow2", 0, info.Kernel, info.Initrd)
	must(t, err)
	kernel, initrd := filepath.Join(dir, "vmlinuz"), filepath.Join(dir, "initrd.img")
	must(t, os.WriteFile(kernel, boot[info.Kernel], 0o644))
	must(t, os.WriteFile(initrd, boot[info.Initrd], 0o644))
	clone := filepath.Join(dir, "booted.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", disk, clone).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create: %v: %s", err, out)
	}

	play := func(name, hostLine string) map[string]json.RawMessage {
		t.Helper()
		inv := filepath.Join(dir, name+".ini")
		out := filepath.Join(dir, name+".json")
		must(t, os.WriteFile(inv, []byte("localhost ansible_connection=local ansible_python_interpreter=/usr/bin/python3\n[target]\n"+hostLine+"\n"), 0o644))
		text, code, took := runPlaybook(t, env, "facts.yml", "-i", inv, "-e", "facts_out="+out)
		if code != 0 {
			t.Fatalf("%s: ansible-playbook exited %d:\n%s", name, code, text)
		}
		t.Logf("%s: the setup module in %s", name, took.Round(100*time.Millisecond))
		return readFacts(t, out)
	}
	viaImgbake := play("imgbake", disk+" ansible_connection=imgbake.disk.imgbake ansible_imgbake_format=qcow2 ansible_python_interpreter=/usr/bin/python3")

	g := bootClone(t, "booted", clone, kernel, initrd, info.RootUUID, dir)
	g.waitForLogin(t, key, "systemctl is-system-running --wait || true")
	sshOpts := strings.Join(sshArgs(key, g.port), " ")
	booted := play("booted", fmt.Sprintf("booted ansible_host=127.0.0.1 ansible_port=%d ansible_user=root ansible_python_interpreter=/usr/bin/python3 ansible_ssh_private_key_file=%s ansible_ssh_common_args=%q",
		g.port, key, sshOpts))

	var missing, extra []string
	for k := range booted {
		if _, ok := viaImgbake[k]; !ok && bootedOnlyFacts[k] == "" && !interfaceFact.MatchString(k) {
			missing = append(missing, k)
		}
	}
	for k := range viaImgbake {
		if _, ok := booted[k]; !ok && !interfaceFact.MatchString(k) {
			extra = append(extra, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 {
		t.Errorf("facts of the booted image missing through imgbake: %v", missing)
	}
	if len(extra) > 0 {
		t.Errorf("facts through imgbake that the booted image does not have: %v", extra)
	}
	for k := range bootedOnlyFacts {
		if _, ok := booted[k]; !ok {
			t.Errorf("bootedOnlyFacts names %s, which the booted image does not have either", k)
		}
	}
	for _, k := range []string{"memtotal_mb", "mounts", "devices"} {
		if v, ok := viaImgbake[k]; !ok || len(v) < 3 {
			t.Errorf("through imgbake, %s is %s", k, v)
		}
	}
}
