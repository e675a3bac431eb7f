package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/diskfs/go-diskfs/partition/mbr"

	"github.com/imgbake/imgbake/internal/bootvm"
)

// Workload 8's two points of comparison outside imgbake (issue 19): the
// same play over ssh to the bootable test image booted under TCG (what a
// Packer + Ansible user runs), and through Ansible's own chroot connection
// on the python3 image loop-mounted on the host (not safe for users: the
// image's files are the host kernel's to parse and its programs run on the
// host; but it is Python at host speed, the floor).

const (
	variantSSH    = "play-ssh-booted" // the play over ssh to the image booted under TCG
	variantChroot = "play-chroot"     // community.general.chroot on the loop-mounted image
)

// bootLoginTimeout bounds one boot until sshd accepts the key: systemd
// under TCG takes 20 s on an idle machine, minutes on a loaded one.
const bootLoginTimeout = 10 * time.Minute

// imageInfo is the part of testimages' <image>.json the variants read.
type imageInfo struct {
	RootUUID      string `json:"root_uuid"`
	RootPartition int    `json:"root_partition"` // 0: the filesystem is the whole disk
	FSType        string `json:"fstype"`
	Format        string `json:"format"`
	Kernel        string `json:"kernel"`
	Initrd        string `json:"initrd"`
}

func readImageInfo(image string) (imageInfo, error) {
	var info imageInfo
	data, err := os.ReadFile(image + ".json")
	if err != nil {
		return info, fmt.Errorf("%w (testimages/build.sh writes it beside the image)", err)
	}
	if err := json.Unmarshal(data, &info); err != nil {
		return info, fmt.Errorf("%s.json: %w", image, err)
	}
	return info, nil
}

// inventoryFor renders an Ansible INI inventory: the play's controller
// (local) and the target host with its variables, sorted by name, each
// value double-quoted as the INI parser's literal evaluation reads it.
func inventoryFor(host string, vars map[string]string) string {
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("controller ansible_connection=local ansible_python_interpreter=/usr/bin/python3\n")
	b.WriteString(host)
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%q", k, vars[k])
	}
	b.WriteString("\n")
	return b.String()
}

// playOnHost runs site.yml against the inventory's host with the given
// connection; the play's own fetch lands in out.
func (b *bench) playOnHost(r *run, host, connection string, vars map[string]string, out string) error {
	inv := filepath.Join(b.cfg.work, fmt.Sprintf("inventory-%s-%d.ini", r.Variant, r.Rep))
	if err := os.WriteFile(inv, []byte(inventoryFor(host, vars)), 0o600); err != nil {
		return err
	}
	defer os.Remove(inv)
	argv := []string{"ansible-playbook", "site.yml", "-i", inv, "-e", "disk=" + host, "-e", "out_dir=" + out, "-e", "imgbake_connection=" + connection}
	return b.runPlay(r, argv)
}

// runPlay runs a play's argv in the playbook's directory and checks that
// it ran every task.
func (b *bench) runPlay(r *run, argv []string) error {
	var out strings.Builder
	o := b.procOpts()
	o.dir, o.env = b.playDir, b.ansibleEnv()
	verbose := o.logLines
	o.logLines = func(l string) {
		out.WriteString(l + "\n")
		if verbose != nil {
			verbose(l)
		}
	}
	if err := b.execWith(r, argv, o); err != nil {
		return err
	}
	return checkPlay(r, "\n"+out.String())
}

// bootedBase is the bootable test image made an Ansible target once per
// run: python3 from the host's packages and root's ssh key.
type bootedBase struct {
	disk, kernel, initrd, key string
	info                      imageInfo
}

// prepareBooted makes the booted variant's base image (once per run).
func (b *bench) prepareBooted() (*bootedBase, error) {
	if b.booted != nil || b.bootedErr != nil {
		return b.booted, b.bootedErr
	}
	b.booted, b.bootedErr = b.makeBootedBase()
	return b.booted, b.bootedErr
}

func (b *bench) makeBootedBase() (*bootedBase, error) {
	for tool, pkg := range map[string]string{"ssh": "openssh-client", "ssh-keygen": "openssh-client", "qemu-img": "qemu-utils", "dpkg-scanpackages": "dpkg-dev"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("%s: %w (apt-get install %s)", tool, err, pkg)
		}
	}
	info, err := readImageInfo(b.cfg.BootImage)
	if err != nil {
		return nil, err
	}
	if info.Kernel == "" || info.Initrd == "" || info.Format != "qcow2" {
		return nil, fmt.Errorf("%s.json: want a qcow2 image with its kernel and initrd, got %+v", b.cfg.BootImage, info)
	}
	dir := filepath.Join(b.cfg.work, "booted")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	base := &bootedBase{disk: filepath.Join(dir, "base.qcow2"), key: filepath.Join(dir, "id_ed25519"), info: info}
	start := time.Now()
	if err := copySparse(b.cfg.BootImage, base.disk); err != nil {
		return nil, err
	}
	if err := bootvm.NewKey(base.key); err != nil {
		return nil, err
	}
	files := filepath.Join(dir, "files")
	if err := os.Mkdir(files, 0o700); err != nil {
		return nil, err
	}
	if err := b.imgbakeQuiet("copy-out", "--format", "qcow2", "-a", base.disk, "/var/lib/dpkg/status", "/etc/os-release", info.Kernel, info.Initrd, files); err != nil {
		return nil, err
	}
	base.kernel, base.initrd = filepath.Join(files, filepath.Base(info.Kernel)), filepath.Join(files, filepath.Base(info.Initrd))
	status, err := os.ReadFile(filepath.Join(files, "status"))
	if err != nil {
		return nil, err
	}
	osRelease, err := os.ReadFile(filepath.Join(files, "os-release"))
	if err != nil {
		return nil, err
	}
	archiveWork := filepath.Join(dir, "archive")
	if err := os.Mkdir(archiveWork, 0o700); err != nil {
		return nil, err
	}
	repoRoot, err := filepath.Abs(b.cfg.repo)
	if err != nil {
		return nil, err
	}
	// Ansible needs python3 on its targets; the image has none and no
	// network to the Debian mirror: the host's own packages, as an archive.
	repo, err := bootvm.HostArchive(b.ctx, repoRoot, archiveWork, status, osRelease, "python3")
	if err != nil {
		return nil, err
	}
	source, stop, err := bootvm.ServeArchive(repo)
	if err != nil {
		return nil, err
	}
	defer stop()
	recipe := filepath.Join(dir, "target.yaml")
	text := fmt.Sprintf("name: an Ansible target\nsteps:\n  - ssh_inject: {user: root, file: %q}\n  - write: {path: /etc/apt/sources.list, content: %q}\n  - install: [python3]\n",
		base.key+".pub", source+"\n")
	if err := os.WriteFile(recipe, []byte(text), 0o600); err != nil {
		return nil, err
	}
	if err := b.imgbakeQuiet("run", "--format", "qcow2", "-a", base.disk, recipe); err != nil {
		return nil, err
	}
	logf("w8 booted image prepared (python3, root's key) in %.1f s", time.Since(start).Seconds())
	return base, nil
}

// imgbakeQuiet runs the binary under test for preparation, not measured.
func (b *bench) imgbakeQuiet(args ...string) error {
	cmd := exec.CommandContext(b.ctx, b.imgbake, args...)
	// On Ctrl-C imgbake is interrupted, not killed, so it reaps its own
	// appliance; SIGKILL only if it has not exited a minute later.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = time.Minute
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("imgbake %s: %w\n%s", strings.Join(args, " "), err, indent(string(out)))
	}
	return nil
}

// playOverSSH boots an overlay of the prepared image, waits for sshd and
// systemd, then times the play alone; the boot goes in r.Timings["boot"].
// QEMU is killed and reaped on every path.
func (b *bench) playOverSSH(r *run) error {
	base, err := b.prepareBooted()
	if err != nil {
		return fmt.Errorf("preparing the booted image: %w", err)
	}
	dir := filepath.Join(b.cfg.work, "booted")
	overlay := filepath.Join(dir, fmt.Sprintf("rep%d.qcow2", r.Rep))
	if err := bootvm.Overlay(base.disk, overlay); err != nil {
		return err
	}
	defer os.Remove(overlay)
	start := time.Now()
	g, err := bootvm.Start(bootvm.Options{Name: fmt.Sprintf("bench-rep%d", r.Rep), Disk: overlay, Format: "qcow2",
		Kernel: base.kernel, Initrd: base.initrd, RootUUID: base.info.RootUUID, Dir: dir})
	if err != nil {
		return err
	}
	defer g.Stop()
	if _, err := g.WaitForLogin(b.ctx, base.key, "systemctl is-system-running --wait || true", bootLoginTimeout); err != nil {
		return err
	}
	boot := time.Since(start)
	logf("w8 booted VM: ssh login after %.1f s", boot.Seconds())
	out := filepath.Join(dir, fmt.Sprintf("fetched-rep%d", r.Rep))
	defer os.RemoveAll(out)
	err = b.playOnHost(r, "booted-vm", "ssh", map[string]string{
		"ansible_host":                 "127.0.0.1",
		"ansible_port":                 fmt.Sprint(g.Port),
		"ansible_user":                 "root",
		"ansible_ssh_private_key_file": base.key,
		"ansible_ssh_common_args":      strings.Join(bootvm.SSHArgs(base.key, g.Port), " "),
		"ansible_pipelining":           "true", // as a Packer user would have it
	}, out)
	if r.Timings == nil {
		r.Timings = map[string]float64{}
	}
	r.Timings["boot"] = float64(boot.Milliseconds())
	return err
}

// partitionExtent is where partition n (1-based; 0: the whole disk) of a
// raw disk lies, in bytes, from its GPT or else its MBR. Nothing is
// probed beyond the table: the filesystem type comes from the image's
// description.
func partitionExtent(disk string, n int) (offset, size int64, err error) {
	f, err := os.Open(disk)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, 0, err
	}
	if n == 0 {
		return 0, st.Size(), nil
	}
	if n < 0 {
		return 0, 0, fmt.Errorf("%s: partition %d", disk, n)
	}
	const sector = 512
	lba0 := make([]byte, sector)
	if _, err := io.ReadFull(f, lba0); err != nil {
		return 0, 0, fmt.Errorf("%s: reading the MBR: %w", disk, err)
	}
	if lba0[510] != 0x55 || lba0[511] != 0xaa {
		return 0, 0, fmt.Errorf("%s: no partition table (no MBR signature), but partition %d asked for", disk, n)
	}
	var start, length int64
	if lba0[446+4] == byte(mbr.GPTProtective) {
		t, err := gpt.Read(f, sector, sector)
		if err != nil {
			return 0, 0, fmt.Errorf("%s: reading the GPT: %w", disk, err)
		}
		// Read leaves out unused entries: the number is the entry's Index.
		for _, p := range t.Partitions {
			if p.Index == n && p.Type != gpt.Unused {
				start, length = p.GetStart(), p.GetSize()
			}
		}
		if length == 0 {
			return 0, 0, fmt.Errorf("%s: the GPT has no partition %d", disk, n)
		}
	} else {
		t, err := mbr.Read(f, sector, sector)
		if err != nil {
			return 0, 0, fmt.Errorf("%s: reading the MBR: %w", disk, err)
		}
		for _, p := range t.Partitions {
			if p.Index == n && p.Type != mbr.Empty {
				start, length = p.GetStart(), p.GetSize()
			}
		}
		if length == 0 {
			return 0, 0, fmt.Errorf("%s: the MBR has no primary partition %d", disk, n)
		}
	}
	if start <= 0 || length <= 0 || start+length > st.Size() {
		return 0, 0, fmt.Errorf("%s: partition %d (%d bytes at %d) is not inside the %d-byte disk", disk, n, length, start, st.Size())
	}
	return start, length, nil
}

// playInChroot loop-mounts the root filesystem of a copy of the python3
// image on the host and runs the play through community.general.chroot.
// The mount and the loop device are undone on every path.
func (b *bench) playInChroot(r *run) error {
	if out, err := exec.Command("ansible-doc", "-t", "connection", "-l", "community.general").Output(); err != nil || !strings.Contains(string(out), "community.general.chroot") {
		return errors.New("community.general.chroot not found (bash scripts/install-deps.sh --bench installs Debian's ansible, which ships it; or put the collection on ANSIBLE_COLLECTIONS_PATH)")
	}
	info, err := readImageInfo(b.cfg.PythonImage)
	if err != nil {
		return err
	}
	if info.Format != "raw" || info.FSType == "" {
		return fmt.Errorf("%s.json: want a raw image with its root's fstype, got %+v", b.cfg.PythonImage, info)
	}
	img, cleanup, err := b.copyOf(b.cfg.PythonImage)
	if err != nil {
		return err
	}
	defer cleanup()
	return withLoopMount(img, info.RootPartition, info.FSType, b.cfg.work, func(mnt string) error {
		out := filepath.Join(b.cfg.work, fmt.Sprintf("fetched-chroot-%d", r.Rep))
		defer os.RemoveAll(out)
		return b.playOnHost(r, "chroot-image", "community.general.chroot", map[string]string{"ansible_host": mnt}, out)
	})
}

// withLoopMount mounts partition n (0: the whole disk) of the raw disk, a
// filesystem of type fstype (never probed), read-write on a new directory
// under parent, runs f on it, and unmounts and detaches the loop device
// whatever happened.
func withLoopMount(disk string, n int, fstype, parent string, f func(mnt string) error) (err error) {
	off, size, err := partitionExtent(disk, n)
	if err != nil {
		return err
	}
	dev, err := exec.Command("losetup", "-f", "--show", "-o", fmt.Sprint(off), "--sizelimit", fmt.Sprint(size), disk).Output()
	if err != nil {
		return fmt.Errorf("losetup %s: %w", disk, err)
	}
	loop := strings.TrimSpace(string(dev))
	defer func() {
		if out, derr := exec.Command("losetup", "-d", loop).CombinedOutput(); derr != nil && err == nil {
			err = fmt.Errorf("losetup -d %s: %w: %s", loop, derr, out)
		}
	}()
	mnt, err := os.MkdirTemp(parent, "chroot-")
	if err != nil {
		return err
	}
	defer os.Remove(mnt)
	// nodev: the image's device nodes stay files, not the host's devices.
	if out, err := exec.Command("mount", "-t", fstype, "-o", "nodev", loop, mnt).CombinedOutput(); err != nil {
		return fmt.Errorf("mount %s %s: %w: %s", loop, mnt, err, out)
	}
	defer func() {
		if out, uerr := exec.Command("umount", mnt).CombinedOutput(); uerr != nil && err == nil {
			err = fmt.Errorf("umount %s: %w: %s", mnt, uerr, out)
		}
	}()
	return f(mnt)
}
