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

// bootedOnlyFact matches the only facts the booted image may have that
// the image through imgbake lacks (and the other way round): those named
// after a network interface (ansible_enp0s3, ansible_eth0). The booted
// guest's udev names its NIC; the appliance has none without
// ansible_imgbake_network, and calls it eth0 with it. The README ("Facts
// and tools as on a booted host") says so too.
var bootedOnlyFact = regexp.MustCompile(`^(en|eth|wl)[a-z0-9]+$`)

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
// real (its own kernel, systemd, over ssh), but for the per-interface
// facts (bootedOnlyFact); the hardware facts that need /dev/shm and
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
	// Ansible needs python3 on its targets: the host's, as an archive.
	source := hostArchive(t, disk, "qcow2", "python3")
	recipe := writeRecipe(t, fmt.Sprintf(`name: an Ansible target
steps:
  - ssh_inject: {user: root, file: %q}
  - write: {path: /etc/apt/sources.list, content: "%s\n"}
  - install: [python3]
`, key+".pub", source))
	if r := imgbake(t, "run", "-a", disk, recipe); r.code != ExitOK {
		t.Fatalf("installing the ssh key and python3: %s", r)
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
	sshOpts := strings.Join(sshArgs(key, g.Port), " ")
	booted := play("booted", fmt.Sprintf("booted ansible_host=127.0.0.1 ansible_port=%d ansible_user=root ansible_python_interpreter=/usr/bin/python3 ansible_ssh_private_key_file=%s ansible_ssh_common_args=%q",
		g.Port, key, sshOpts))

	var missing, extra, tolerated []string
	for k := range booted {
		if _, ok := viaImgbake[k]; !ok {
			if bootedOnlyFact.MatchString(k) {
				tolerated = append(tolerated, k)
			} else {
				missing = append(missing, k)
			}
		}
	}
	for k := range viaImgbake {
		if _, ok := booted[k]; !ok {
			if bootedOnlyFact.MatchString(k) {
				tolerated = append(tolerated, k)
			} else {
				extra = append(extra, k)
			}
		}
	}
	t.Logf("%d facts booted, %d through imgbake; differing as allowed: %v", len(booted), len(viaImgbake), tolerated)
	for _, k := range []string{"interfaces", "service_mgr", "memtotal_mb", "mounts"} {
		t.Logf("%s: booted %.200s, through imgbake %.200s", k, booted[k], viaImgbake[k])
	}
	if len(booted) < 50 {
		t.Errorf("the booted image has only %d facts: %v", len(booted), booted)
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 {
		t.Errorf("facts of the booted image missing through imgbake: %v", missing)
	}
	if len(extra) > 0 {
		t.Errorf("facts through imgbake that the booted image does not have: %v", extra)
	}
	for _, k := range []string{"memtotal_mb", "mounts", "devices"} {
		if v, ok := viaImgbake[k]; !ok || len(v) < 3 {
			t.Errorf("through imgbake, %s is %s", k, v)
		}
	}
}
