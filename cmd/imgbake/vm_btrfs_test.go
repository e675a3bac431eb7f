package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/imgbake/imgbake/appliance/proto"
	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/testimages"
)

// btrfsLayout is what one btrfs test image must look like to imgbake.
type btrfsLayout struct {
	image, id, version string
	root               string            // subvolume holding the OS
	subvols            map[string]string // mountpoint → subvolume mounted there
	all                []string          // every subvolume
}

var btrfsLayouts = []btrfsLayout{
	{testimages.FedoraBtrfs, "fedora", "39", "root", map[string]string{"/": "root", "/home": "home"}, []string{"root", "home"}},
	{testimages.OpenSUSEBtrfs, "opensuse-leap", "15.5", "@/.snapshots/1/snapshot",
		map[string]string{"/": "@/.snapshots/1/snapshot", "/home": "@/home", "/var": "@/var", "/.snapshots": "@/.snapshots"},
		[]string{"@", "@/.snapshots", "@/.snapshots/1/snapshot", "@/home", "@/var"}},
	{testimages.UbuntuBtrfs, "ubuntu", "22.04", "@", map[string]string{"/": "@", "/home": "@home"}, []string{"@", "@home"}},
}

// btrfsRecipe writes to / and to /home (a subvolume of its own), runs a
// command of the image and adds a user.
const btrfsRecipe = `name: btrfs
steps:
  - write: {path: /root/facts, content: "{{ .os.id }} {{ .os.version_id }}\n"}
  - write: {path: /home/from-recipe, content: "in the home subvolume\n"}
  - run: "uname -m > /root/ran && ls /usr/bin/dpkg >> /root/ran"
  - user: {name: ops, shell: /bin/bash}
`

// TestBtrfsLayoutsVM: Fedora's root/home subvolumes, openSUSE's default
// subvolume snapshot and Ubuntu's @/@home are found and identified by
// inspect (root device and subvolume, what is mounted where, the
// subvolumes as btrfs-progs lists them); a recipe's writes land in the
// subvolume fstab mounts at their path, read back on the host through a
// read-only loop mount of the top level (a /home file in the home
// subvolume, not in the root's /home directory); ls and cat read them,
// edit changes a /home file and reset-password the root's /etc/shadow.
func TestBtrfsLayoutsVM(t *testing.T) {
	vmTests(t)
	for _, l := range btrfsLayouts {
		t.Run(l.image, func(t *testing.T) {
			tmp := privateTmp(t)
			info := testimages.InfoOf(t, l.image)
			disk := testimages.Fresh(t, l.image)
			before := sha256File(t, disk)
			dev := fmt.Sprintf("/dev/vda%d", info.RootPartition)

			rep := inspectJSON(t, "-a", disk)
			if rep.OS.ID != l.id || rep.OS.VersionID != l.version || rep.OS.Root != dev || rep.OS.RootSubvolume != l.root ||
				rep.OS.ReleaseFile != "/etc/os-release" || rep.Hostname != info.Hostname || rep.Arch != "x86_64" {
				t.Errorf("os %+v, hostname %q, arch %q", rep.OS, rep.Hostname, rep.Arch)
			}
			wantMounts := map[string]string{}
			for mp := range l.subvols {
				wantMounts[mp] = dev
			}
			if info.BootPartition > 0 {
				wantMounts["/boot"] = fmt.Sprintf("/dev/vda%d", info.BootPartition)
			}
			if !jsonEqual(rep.Mountpoints, wantMounts) || !jsonEqual(rep.Subvolumes, l.subvols) {
				t.Errorf("mountpoints %v, subvolumes %v; want %v, %v", rep.Mountpoints, rep.Subvolumes, wantMounts, l.subvols)
			}
			// The subvolume list agrees with btrfs-progs on the host.
			view := testimages.OpenBtrfs(t, disk, "raw", info.RootPartition)
			hostSubvols, hostDefault := view.Subvolumes(t)
			view.Close()
			if !slices.Equal(hostSubvols, l.all) || hostDefault != info.DefaultSubvolume {
				t.Fatalf("the image itself: btrfs subvolume list %v, default %q; want %v, %q", hostSubvols, hostDefault, l.all, info.DefaultSubvolume)
			}
			fsRep := btrfsFilesystem(t, rep, dev)
			var paths []string
			for _, sv := range fsRep.Subvolumes {
				paths = append(paths, sv.Path)
			}
			if !slices.Equal(paths, hostSubvols) || fsRep.DefaultSubvolume != info.DefaultSubvolume {
				t.Errorf("inspect lists subvolumes %v, default %q; btrfs-progs %v, %q", paths, fsRep.DefaultSubvolume, hostSubvols, info.DefaultSubvolume)
			}
			for _, w := range rep.Warnings {
				if !strings.Contains(w, "package database") { // the rpm images have a Debian rootfs
					t.Errorf("warning %q", w)
				}
			}
			if sha256File(t, disk) != before {
				t.Fatal("inspect changed the image")
			}

			r := imgbake(t, "run", "-a", disk, writeRecipe(t, btrfsRecipe))
			wantCode(t, r, 0, "run")
			r = imgbake(t, "cat", "-a", disk, "/home/README", "/home/from-recipe")
			wantCode(t, r, 0, "cat")
			if want := "imgbake test image " + l.image + ": the home subvolume\nin the home subvolume\n"; r.stdout != want {
				t.Errorf("cat = %q, want %q", r.stdout, want)
			}
			r = imgbake(t, "ls", "-a", disk, "/home")
			wantCode(t, r, 0, "ls")
			if !strings.Contains(r.stdout, "README") || !strings.Contains(r.stdout, "from-recipe") {
				t.Errorf("ls /home:\n%s", r.stdout)
			}
			r = imgbake(t, "edit", "-a", disk, "-e", "s/^imgbake/edited: imgbake/", "/home/README")
			wantCode(t, r, 0, "edit")
			pwFile := filepath.Join(t.TempDir(), "pw")
			must(t, os.WriteFile(pwFile, []byte("btrfs-secret\n"), 0o600))
			r = imgbake(t, "reset-password", "-a", disk, "--password-file", pwFile, "ops")
			wantCode(t, r, 0, "reset-password")
			view = testimages.OpenBtrfs(t, disk, "raw", info.RootPartition)
			read := func(p string) string {
				t.Helper()
				b, err := view.ReadFile(p)
				if err != nil {
					t.Fatalf("reading %s back: %v", p, err)
				}
				return string(b)
			}
			if got := read(l.root + "/root/facts"); got != l.id+" "+l.version+"\n" {
				t.Errorf("facts %q", got)
			}
			if got := read(l.root + "/root/ran"); got != "x86_64\n/usr/bin/dpkg\n" {
				t.Errorf("run output %q", got)
			}
			if !strings.Contains(read(l.root+"/etc/passwd"), "\nops:x:") {
				t.Error("no ops in the root subvolume's /etc/passwd")
			}
			if got := read(l.subvols["/home"] + "/from-recipe"); got != "in the home subvolume\n" {
				t.Errorf("/home/from-recipe in %s: %q", l.subvols["/home"], got)
			}
			if got := read(l.subvols["/home"] + "/README"); !strings.HasPrefix(got, "edited: imgbake test image") {
				t.Errorf("/home/README after edit: %q", got)
			}
			if shadow := read(l.root + "/etc/shadow"); !strings.Contains(shadow, "\nops:$") {
				t.Errorf("ops has no password hash in the root subvolume's /etc/shadow:\n%s", shadow)
			}
			if _, err := view.ReadFile(l.root + "/home/from-recipe"); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("/home/from-recipe landed in the root subvolume's /home directory too (%v)", err)
			}
			// The run-once state is under /var: openSUSE's is a subvolume.
			state := l.root + "/var/lib/imgbake/state.json"
			if sv, ok := l.subvols["/var"]; ok {
				state = sv + "/lib/imgbake/state.json"
			}
			if !strings.Contains(read(state), `"btrfs"`) {
				t.Errorf("no run-once state in %s", state)
			}
			view.Close()
			if out, err := testimages.CheckBtrfs(t, disk, "raw", info.RootPartition); err != nil {
				t.Errorf("btrfs check --readonly after the run: %v\n%s", err, out)
			}

			noLeftovers(t, tmp)
		})
	}
}

// btrfsFilesystem is the filesystem inspect reports on dev.
func btrfsFilesystem(t *testing.T, rep fsops.Inspection, dev string) (f struct {
	Subvolumes []struct {
		ID   uint64
		Path string
	}
	DefaultSubvolume string
}) {
	t.Helper()
	for _, fs := range rep.Filesystems {
		if fs.Device == dev {
			if fs.Type != "btrfs" {
				t.Fatalf("%s is %s", dev, fs.Type)
			}
			for _, sv := range fs.Subvolumes {
				f.Subvolumes = append(f.Subvolumes, struct {
					ID   uint64
					Path string
				}{sv.ID, sv.Path})
			}
			f.DefaultSubvolume = fs.DefaultSubvolume
			return f
		}
	}
	t.Fatalf("no filesystem %s in %+v", dev, rep.Filesystems)
	return f
}

// TestBtrfsMountOptionsVM: -m DEVICE:MOUNTPOINT:OPTIONS mounts the
// subvolumes named (guestfish's -m), in a cold boot too (the btrfs driver
// and its dependencies load without the warm snapshot's preloads); the
// write lands where -m put it. Multi-boot inspection finds the OS in a
// subvolume of a btrfs filesystem it does not mount.
func TestBtrfsMountOptionsVM(t *testing.T) {
	vmTests(t)
	tmp := privateTmp(t)
	info := testimages.InfoOf(t, testimages.FedoraBtrfs)
	disk := testimages.Fresh(t, testimages.FedoraBtrfs)
	dev := fmt.Sprintf("/dev/vda%d", info.RootPartition)
	root, home := dev+":/:subvol=root", dev+":/home:subvol=home,noatime"

	rep := inspectJSON(t, "-a", disk, "-m", root)
	if rep.OS.ID != "fedora" || rep.OS.RootSubvolume != "root" || !jsonEqual(rep.Mountpoints, map[string]string{"/": dev}) {
		t.Errorf("inspect -m %s: os %+v, mountpoints %v", root, rep.OS, rep.Mountpoints)
	}

	t.Setenv("IMGBAKE_COLD", "1")
	r := imgbake(t, "ls", "-v", "-a", disk, "-m", root, "/etc/os-release")
	wantCode(t, r, 0, "cold ls -m "+root)
	if strings.TrimSpace(r.stdout) != "/etc/os-release" || !strings.Contains(r.stderr, "cold boot") {
		t.Errorf("ls = %q, want a cold boot:\n%s", r.stdout, r.stderr)
	}
	t.Setenv("IMGBAKE_COLD", "")

	recipe := writeRecipe(t, "steps:\n  - write: {path: /home/by-hand, content: \"-m home\\n\"}\n"+
		"  - run: awk '$2 == \"/home\" {print $4}' /proc/self/mounts > /root/home-opts\n")
	r = imgbake(t, "run", "-a", disk, "-m", root, "-m", home, recipe)
	wantCode(t, r, 0, "run -m")
	view := testimages.OpenBtrfs(t, disk, "raw", info.RootPartition)
	if b, err := view.ReadFile("home/by-hand"); err != nil || string(b) != "-m home\n" {
		t.Errorf("home/by-hand: %q, %v", b, err)
	}
	if b, err := view.ReadFile("root/root/home-opts"); err != nil || !strings.Contains(string(b), "noatime") || !strings.Contains(string(b), "subvol=/home") {
		t.Errorf("/home mount options %q, %v; want noatime and subvol=/home", b, err)
	}
	view.Close()

	// Beside another OS's disk, the btrfs OS is found in its subvolume by
	// multi-boot inspection without being mounted.
	rep = inspectJSON(t, "-a", testimages.Fresh(t, testimages.NoPart), "-a", disk)
	if i := slices.IndexFunc(rep.OperatingSystems, func(o proto.OSRoot) bool { return o.ID == "fedora" }); i < 0 ||
		rep.OperatingSystems[i].Subvolume != "root" || rep.OperatingSystems[i].Mountpoint != "" || rep.OS.ID != "debian" {
		t.Errorf("multi-boot: root %s, operating systems %+v, warnings %q", rep.OS.ID, rep.OperatingSystems, rep.Warnings)
	}

	// A subvolume that does not exist fails, naming the option.
	r = imgbake(t, "ls", "-a", disk, "-m", dev+":/:subvol=nosuch", "/")
	if r.code == 0 || !strings.Contains(r.stderr, "subvol=nosuch") {
		t.Errorf("-m with a missing subvolume: %s", r)
	}
	noLeftovers(t, tmp)
}

// TestBtrfsFsckVM: fsck checks btrfs with btrfs check --readonly (clean on
// a fresh image, nothing written); on a filesystem whose tree root was
// overwritten it reports errors and exits 1, still writing nothing.
func TestBtrfsFsckVM(t *testing.T) {
	vmTests(t)
	tmp := privateTmp(t)
	info := testimages.InfoOf(t, testimages.UbuntuBtrfs)
	disk := testimages.Fresh(t, testimages.UbuntuBtrfs)
	before := sha256File(t, disk)
	dev := fmt.Sprintf("/dev/vda%d", info.RootPartition)
	r := imgbake(t, "fsck", "-a", disk)
	wantCode(t, r, 0, "fsck")
	wantMatch(t, r.stdout, `\$ btrfs check --readonly `+dev, "fsck")
	wantMatch(t, r.stdout, `-> `+dev+`: clean \(btrfs rc 0\)`, "fsck")
	if sha256File(t, disk) != before {
		t.Fatal("fsck changed the image")
	}

	// Damage the filesystem tree: zero the first leaf btrfs-progs names
	// for the @ subvolume (found with the host's btrfs inspect-internal).
	corruptBtrfsTree(t, disk, info.RootOffset)
	before = sha256File(t, disk)
	r = imgbake(t, "fsck", "-a", disk)
	wantCode(t, r, 1, "fsck of a damaged btrfs")
	wantMatch(t, r.stdout, `-> `+dev+`: (errors found|failed) \(btrfs rc [1-9]`, "fsck of a damaged btrfs")
	if sha256File(t, disk) != before {
		t.Fatal("fsck without --repair changed the image")
	}
	noLeftovers(t, tmp)
}

// corruptBtrfsTree overwrites every copy of the root node of subvolume
// 256's tree in the single-device btrfs filesystem at offset of the raw
// image, where the host's btrfs-progs (dump-tree of the root and chunk
// trees) says they lie.
func corruptBtrfsTree(t *testing.T, disk string, offset int64) {
	t.Helper()
	part := filepath.Join(t.TempDir(), "part")
	if out, err := exec.Command("dd", "if="+disk, "of="+part, "bs=1M", "iflag=skip_bytes", fmt.Sprintf("skip=%d", offset),
		"conv=sparse", "status=none").CombinedOutput(); err != nil {
		t.Fatalf("dd: %v %s", err, out)
	}
	dump := func(tree string) []string {
		out, err := exec.Command("btrfs", "inspect-internal", "dump-tree", "-t", tree, part).Output()
		if err != nil {
			t.Fatalf("btrfs inspect-internal dump-tree -t %s: %v", tree, err)
		}
		return strings.Split(string(out), "\n")
	}
	// "item 7 key (256 ROOT_ITEM 0) itemoff ..." then
	// "		generation 8 root_dirid 256 bytenr 30523392 ..."
	var logical int64 = -1
	lines := dump("root")
	for i, l := range lines {
		if strings.Contains(l, "key (256 ROOT_ITEM") && i+1 < len(lines) {
			if _, v, ok := strings.Cut(lines[i+1], " bytenr "); ok {
				fmt.Sscan(v, &logical)
			}
		}
	}
	if logical < 0 {
		t.Fatalf("no ROOT_ITEM of subvolume 256 in the root tree")
	}
	// "item 2 key (FIRST_CHUNK_TREE CHUNK_ITEM 30408704) itemoff ..." then
	// "		length 268435456 owner 2 ..." and one
	// "			stripe N devid 1 offset 38797312" per copy.
	var phys []int64
	lines = dump("chunk")
	for i, l := range lines {
		_, rest, ok := strings.Cut(l, "CHUNK_ITEM ")
		if !ok {
			continue
		}
		var start, length int64
		fmt.Sscan(strings.TrimRight(strings.Fields(rest)[0], ")"), &start)
		for k := i + 1; k < len(lines) && !strings.Contains(lines[k], " key ("); k++ {
			if _, v, ok := strings.Cut(lines[k], "length "); ok && length == 0 {
				fmt.Sscan(v, &length)
			}
			if _, v, ok := strings.Cut(lines[k], "devid 1 offset "); ok && logical >= start && logical < start+length {
				var off int64
				fmt.Sscan(v, &off)
				phys = append(phys, off+logical-start)
			}
		}
	}
	if len(phys) == 0 {
		t.Fatalf("logical %d is in no chunk", logical)
	}
	f, err := os.OpenFile(disk, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	junk := []byte(strings.Repeat("\x5a", 4096))
	for _, p := range phys {
		if _, err := f.WriteAt(junk, offset+p+64); err != nil { // past the checksum: the csum no longer matches
			t.Fatal(err)
		}
	}
}

// TestBtrfsNoOSVM: a btrfs filesystem holding no OS in its default
// subvolume nor in any other is refused with a message naming the
// subvolumes searched and -m; nothing is written.
func TestBtrfsNoOSVM(t *testing.T) {
	vmTests(t)
	if os.Geteuid() != 0 {
		t.Skip("making a btrfs filesystem with subvolumes needs root (a loop mount)")
	}
	disk := filepath.Join(t.TempDir(), "data.raw")
	run := func(name string, args ...string) {
		t.Helper()
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
		}
	}
	run("truncate", "-s", "160M", disk)
	run("mkfs.btrfs", "-q", "-f", disk)
	out, err := exec.Command("losetup", "--find", "--show", disk).Output()
	if err != nil {
		t.Fatalf("losetup: %v", err)
	}
	loop, mnt := strings.TrimSpace(string(out)), t.TempDir()
	t.Cleanup(func() { _ = exec.Command("losetup", "-d", loop).Run() })
	run("mount", "-t", "btrfs", loop, mnt)
	mounted := true
	t.Cleanup(func() {
		if mounted {
			_ = exec.Command("umount", mnt).Run()
		}
	})
	run("btrfs", "subvolume", "create", filepath.Join(mnt, "data"))
	run("btrfs", "subvolume", "create", filepath.Join(mnt, "backup"))
	must(t, os.WriteFile(filepath.Join(mnt, "data", "file"), []byte("not an OS\n"), 0o644))
	run("umount", mnt)
	mounted = false
	run("losetup", "-d", loop)

	before := sha256File(t, disk)
	r := imgbake(t, "run", "-a", disk, writeRecipe(t, goodRecipe))
	wantCode(t, r, ExitImage, "run on a btrfs without an OS")
	for _, want := range []string{"/dev/vda: btrfs without /etc/os-release", "subvolumes (data, backup)", "-m DEVICE"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("the message lacks %q:\n%s", want, r.stderr)
		}
	}
	if sha256File(t, disk) != before {
		t.Fatal("image changed")
	}
}

// TestBtrfsOutputQcow2VM: run -o writes a new qcow2 (free space trimmed
// on btrfs too) whose home subvolume holds the file, read back from the
// qcow2 converted to raw; the input is untouched.
func TestBtrfsOutputQcow2VM(t *testing.T) {
	vmTests(t)
	tmp := privateTmp(t)
	info := testimages.InfoOf(t, testimages.FedoraBtrfs)
	disk := testimages.Fresh(t, testimages.FedoraBtrfs)
	before := sha256File(t, disk)
	out := filepath.Join(t.TempDir(), "out.qcow2")
	r := imgbake(t, "run", "-a", disk, "-o", out, writeRecipe(t, "steps:\n  - write: {path: /home/exported, content: \"to -o\\n\"}\n"))
	wantCode(t, r, 0, "run -o")
	if sha256File(t, disk) != before {
		t.Error("run -o changed the input")
	}
	view := testimages.OpenBtrfs(t, out, "qcow2", info.RootPartition)
	if b, err := view.ReadFile("home/exported"); err != nil || string(b) != "to -o\n" {
		t.Errorf("home/exported in the output: %q, %v", b, err)
	}
	if _, err := view.ReadFile("root/home/exported"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the file is in the root subvolume's /home too (%v)", err)
	}
	view.Close()
	if out, err := testimages.CheckBtrfs(t, out, "qcow2", info.RootPartition); err != nil {
		t.Errorf("btrfs check --readonly of the output: %v\n%s", err, out)
	}
	noLeftovers(t, tmp)
}
