package main

import (
	"bytes"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/imgbake/imgbake/appliance/proto"
	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/internal/vmtest"
	"github.com/imgbake/imgbake/testimages"
)

// TestLayoutRHELVM: RHEL 9's layout (xfs root on LVM, a separate xfs
// /boot, swap on LVM) is inspected as virt-inspector reports RHEL 9.3, and
// a recipe writes to the root and /boot: read back through the host
// kernel's xfs on loop devices of the LV and the partition, both
// filesystems clean by xfs_repair -n after it.
func TestLayoutRHELVM(t *testing.T) {
	vmTests(t)
	tmp := privateTmp(t)
	info := testimages.InfoOf(t, testimages.RHELLVM)
	disk := testimages.Fresh(t, testimages.RHELLVM)
	before := sha256File(t, disk)

	rep := inspectJSON(t, "-a", disk)
	want := fsops.InspectedOS{ID: "rhel", VersionID: "9.3", Name: "Red Hat Enterprise Linux 9.3 (Plow)", IDLike: []string{"fedora"},
		Family: "rhel", Root: "/dev/mapper/rhel-root", ReleaseFile: "/etc/os-release"}
	if !jsonEqual(rep.OS, want) {
		t.Errorf("os %+v\nwant %+v", rep.OS, want)
	}
	if rep.PackageManager != "dnf" || rep.PackageFormat != "rpm" || rep.PackageDB != "/var/lib/rpm/rpmdb.sqlite" ||
		rep.Hostname != info.Hostname || rep.Arch != "x86_64" {
		t.Errorf("packages %q %q %q, hostname %q, arch %q", rep.PackageManager, rep.PackageFormat, rep.PackageDB, rep.Hostname, rep.Arch)
	}
	if !jsonEqual(rep.Mountpoints, map[string]string{"/": "/dev/mapper/rhel-root", "/boot": "/dev/vda1"}) || len(rep.Warnings) > 0 {
		t.Errorf("mountpoints %v, warnings %q", rep.Mountpoints, rep.Warnings)
	}
	if f := fsOf(t, rep, "/dev/vda1"); f.Type != "xfs" || f.UUID != info.BootUUID {
		t.Errorf("/boot filesystem %+v", f)
	}
	if sha256File(t, disk) != before {
		t.Fatal("inspect changed the image")
	}

	r := imgbake(t, "run", "-a", disk, writeRecipe(t, layoutRecipe+`  - write: {path: /boot/from-recipe, content: "on the xfs /boot\n"}
`))
	wantCode(t, r, 0, "run")
	r = imgbake(t, "edit", "-a", disk, "-e", "s/^imgbake/edited: imgbake/", "/boot/README")
	wantCode(t, r, 0, "edit")
	pwFile := filepath.Join(t.TempDir(), "pw")
	must(t, os.WriteFile(pwFile, []byte("rhel-secret\n"), 0o600))
	r = imgbake(t, "reset-password", "-a", disk, "--password-file", pwFile, "ops")
	wantCode(t, r, 0, "reset-password")
	root := testimages.OpenRange(t, disk, info.RootOffset, info.RootSize, "xfs")
	read := func(v *testimages.MountView, p string) string {
		t.Helper()
		b, err := v.ReadFile(p)
		if err != nil {
			t.Fatalf("reading %s back: %v", p, err)
		}
		return string(b)
	}
	if got := read(root, "/root/facts"); got != "rhel 9.3 rhel dnf\n" {
		t.Errorf("facts %q", got)
	}
	if got := read(root, "/root/ran"); got != "/usr/bin/dpkg\nx86_64\n" {
		t.Errorf("run output %q", got)
	}
	if !strings.Contains(read(root, "/etc/passwd"), "\nops:x:") || !strings.Contains(read(root, "/var/lib/imgbake/state.json"), `"layout"`) {
		t.Error("passwd or run-once state lacks the run")
	}
	if !regexp.MustCompile(`(?m)^ops:\$[^:]+:`).MatchString(read(root, "/etc/shadow")) {
		t.Error("no password hash for ops after reset-password")
	}
	if _, err := root.ReadFile("/boot/from-recipe"); err == nil {
		t.Error("/boot/from-recipe landed on the root filesystem, under its mountpoint")
	}
	root.Close()
	bootOff := testimages.PartitionOffset(t, disk, info.BootPartition)
	boot := testimages.OpenRange(t, disk, bootOff, 320<<20, "xfs")
	if got := read(boot, "/from-recipe"); got != "on the xfs /boot\n" {
		t.Errorf("/boot/from-recipe on the /boot filesystem: %q", got)
	}
	if got := read(boot, "/README"); !strings.HasPrefix(got, "edited: imgbake test image") {
		t.Errorf("/boot/README after edit: %q", got)
	}
	boot.Close()
	for _, fs := range []struct {
		name      string
		off, size int64
	}{{"root", info.RootOffset, info.RootSize}, {"/boot", bootOff, 320 << 20}} {
		if out, err := testimages.XFSRepairCheck(t, disk, fs.off, fs.size); err != nil {
			t.Errorf("xfs_repair -n of %s after the run: %v\n%s", fs.name, err, out)
		}
	}
	// fsck checks both xfs filesystems through the appliance.
	r = imgbake(t, "fsck", "-a", disk)
	wantCode(t, r, 0, "fsck")
	wantMatch(t, r.stdout, `(?m)^-> /dev/mapper/rhel-root: clean`, "fsck")
	wantMatch(t, r.stdout, `(?m)^-> /dev/vda1: clean`, "fsck")
	noLeftovers(t, tmp)
}

// raidMembers are debian-raid1.raw's arrays: name, node, member partitions.
var raidMembers = []struct {
	name, node string
	parts      [2]int
}{{"debian:0", "/dev/md0", [2]int{2, 3}}, {"debian:1", "/dev/md1", [2]int{4, 5}}, {"debian:home", "/dev/md127", [2]int{6, 7}}}

// TestLayoutRAID1VM: Debian on md RAID1 (root on an array, LVM on a
// second, /home on a third named in fstab as /dev/md/home). A read-only
// inspect assembles the arrays from their own metadata, reports them and
// leaves every member byte-identical; ls and cat read through them; a
// recipe writes through them and the change is on both members of each
// array (read back with debugfs at each member's data offset); the arrays
// are stopped clean (mdadm --examine of every member on the host: clean,
// the same event count on both); fsck checks the filesystems behind md.
func TestLayoutRAID1VM(t *testing.T) {
	vmTests(t)
	tmp := privateTmp(t)
	info := testimages.InfoOf(t, testimages.RAID1)
	disk := testimages.Fresh(t, testimages.RAID1)
	before := sha256File(t, disk)

	rep := inspectJSON(t, "-a", disk)
	if rep.OS.ID != "debian" || rep.OS.VersionID != "12" || rep.OS.Family != "debian" || rep.OS.Root != "/dev/md0" ||
		rep.PackageManager != "apt" || rep.PackageFormat != "deb" || rep.Hostname != "debian" {
		t.Errorf("os %+v, packages %q %q, hostname %q", rep.OS, rep.PackageManager, rep.PackageFormat, rep.Hostname)
	}
	wantMounts := map[string]string{"/": "/dev/md0", "/boot": "/dev/vda1", "/home": "/dev/md127", "/srv/data": "/dev/mapper/raidvg-srv"}
	if !jsonEqual(rep.Mountpoints, wantMounts) || len(rep.Warnings) > 0 {
		t.Errorf("mountpoints %v, warnings %q", rep.Mountpoints, rep.Warnings)
	}
	for _, a := range raidMembers {
		f := fsOf(t, rep, a.node)
		members := []string{fmt.Sprintf("/dev/vda%d", a.parts[0]), fmt.Sprintf("/dev/vda%d", a.parts[1])}
		if f.MDArray != a.name || f.MDLevel != "raid1" || !jsonEqual(f.MDMembers, members) {
			t.Errorf("%s: %+v", a.node, f)
		}
		for _, p := range members {
			if m := fsOf(t, rep, p); m.Type != "linux_raid_member" || m.Label != a.name {
				t.Errorf("member %s: %+v", p, m)
			}
		}
	}
	if f := fsOf(t, rep, "/dev/md0"); f.UUID != info.RootUUID || f.Type != "ext4" {
		t.Errorf("root array filesystem %+v", f)
	}
	if sha256File(t, disk) != before {
		t.Fatal("a read-only inspect changed the RAID members")
	}

	// ls and cat read through the arrays (the LV on md1, /home on md127).
	r := imgbake(t, "cat", "-a", disk, "/srv/data/marker", "/home/README")
	wantCode(t, r, 0, "cat")
	if !strings.Contains(r.stdout, "LV raidvg/srv on md array debian:1") || !strings.Contains(r.stdout, "/home on md array debian:home") {
		t.Errorf("cat:\n%s", r)
	}
	r = imgbake(t, "ls", "-a", disk, "/etc/mdadm")
	wantCode(t, r, 0, "ls")
	if !strings.Contains(r.stdout, "mdadm.conf") {
		t.Errorf("ls /etc/mdadm:\n%s", r)
	}
	if sha256File(t, disk) != before {
		t.Fatal("cat or ls changed the RAID members")
	}

	r = imgbake(t, "run", "-a", disk, writeRecipe(t, `name: raid
steps:
  - write: {path: /root/facts, content: "{{ .os.id }} {{ .os.version_id }} {{ .os.family }} {{ .os.package_manager }}\n"}
  - run: "ls /usr/bin/dpkg > /root/ran && uname -m >> /root/ran"
  - user: {name: ops, shell: /bin/bash}
  - write: {path: /srv/data/from-recipe, content: "on LVM on md1\n"}
`))
	wantCode(t, r, 0, "run")
	r = imgbake(t, "edit", "-a", disk, "-e", "s/^imgbake/edited: imgbake/", "/home/README")
	wantCode(t, r, 0, "edit")
	pwFile := filepath.Join(t.TempDir(), "pw")
	must(t, os.WriteFile(pwFile, []byte("raid-secret\n"), 0o600))
	r = imgbake(t, "reset-password", "-a", disk, "--password-file", pwFile, "ops")
	wantCode(t, r, 0, "reset-password")
	for _, member := range []struct {
		name            string
		root, srv, home int64
	}{{"first", info.RootOffset, info.DataOffset, info.HomeOffset}, {"second", info.RootMirrorOffset, info.DataMirrorOffset, info.HomeMirrorOffset}} {
		read := func(off int64, p string) string {
			t.Helper()
			b, err := testimages.ReadFileAt(t, disk, off, p)
			if err != nil {
				t.Fatalf("%s members: reading %s back: %v", member.name, p, err)
			}
			return string(b)
		}
		if got := read(member.root, "/root/facts"); got != "debian 12 debian apt\n" {
			t.Errorf("%s member of md0: facts %q", member.name, got)
		}
		if got := read(member.root, "/root/ran"); got != "/usr/bin/dpkg\nx86_64\n" {
			t.Errorf("%s member of md0: run output %q", member.name, got)
		}
		if !strings.Contains(read(member.root, "/etc/passwd"), "\nops:x:") {
			t.Errorf("%s member of md0: no ops in /etc/passwd", member.name)
		}
		if got := read(member.srv, "/from-recipe"); got != "on LVM on md1\n" {
			t.Errorf("%s member of md1: /srv/data/from-recipe %q", member.name, got)
		}
		if fi, err := testimages.StatAt(t, disk, member.home, "/ops"); err != nil || !fi.IsDir {
			t.Errorf("%s member of md127: /home/ops %+v, %v", member.name, fi, err)
		}
		if got := read(member.home, "/README"); !strings.HasPrefix(got, "edited: imgbake test image") {
			t.Errorf("%s member of md127: /home/README after edit: %q", member.name, got)
		}
		if !regexp.MustCompile(`(?m)^ops:\$[^:]+:`).MatchString(read(member.root, "/etc/shadow")) {
			t.Errorf("%s member of md0: no password hash for ops after reset-password", member.name)
		}
	}
	// Stopped clean: each member's metadata says clean, both agree.
	events := regexp.MustCompile(`(?m)^\s*Events : (\d+)$`)
	for _, a := range raidMembers {
		var ev []string
		for i, p := range a.parts {
			exam := testimages.MDExamine(t, disk, p)
			for _, w := range []string{"State : clean", "Array State : AA", fmt.Sprintf("Device Role : Active device %d", i), "- correct"} {
				if !strings.Contains(exam, w) {
					t.Errorf("%s member %d after the run: mdadm --examine lacks %q:\n%s", a.name, p, w, exam)
				}
			}
			if m := events.FindStringSubmatch(exam); m != nil {
				ev = append(ev, m[1])
			}
		}
		if len(ev) != 2 || ev[0] != ev[1] {
			t.Errorf("%s: event counts of the members %v", a.name, ev)
		}
	}

	// fsck checks the filesystems behind md, and the LV on md.
	r = imgbake(t, "fsck", "-a", disk)
	wantCode(t, r, 0, "fsck")
	for _, d := range []string{"/dev/md0", "/dev/md127", "/dev/mapper/raidvg-srv", "/dev/vda1"} {
		wantMatch(t, r.stdout, `(?m)^-> `+regexp.QuoteMeta(d)+`: clean`, "fsck")
	}
	noLeftovers(t, tmp)
}

// TestLayoutRAID1DegradedVM: with one member of the root array gone (its
// superblock wiped), the array starts degraded with a warning naming it,
// the OS is found on it, and a read-only inspect changes nothing.
func TestLayoutRAID1DegradedVM(t *testing.T) {
	vmTests(t)
	tmp := privateTmp(t)
	disk := testimages.Fresh(t, testimages.RAID1)
	// The v1.2 superblock: 4 KiB into member partition 3.
	off := testimages.PartitionOffset(t, disk, 3) + 4096
	f, err := os.OpenFile(disk, os.O_WRONLY, 0)
	must(t, err)
	_, err = f.WriteAt(make([]byte, 4096), off)
	must(t, err)
	must(t, f.Close())
	before := sha256File(t, disk)

	rep := inspectJSON(t, "-a", disk)
	if rep.OS.ID != "debian" || rep.OS.Root != "/dev/md0" || rep.Mountpoints["/home"] != "/dev/md127" {
		t.Errorf("os %+v, mountpoints %v", rep.OS, rep.Mountpoints)
	}
	if f := fsOf(t, rep, "/dev/md0"); !jsonEqual(f.MDMembers, []string{"/dev/vda2"}) {
		t.Errorf("md0: %+v", f)
	}
	want := "md RAID array debian:0 (UUID 5ea1b0d0-0000-4000-8000-0000000008a0, metadata 1.2, members /dev/vda2) is degraded: 1 of its 2 members missing; started on /dev/md0"
	if !jsonEqual(rep.Warnings, []string{want}) {
		t.Errorf("warnings %q\nwant only %q", rep.Warnings, want)
	}
	if sha256File(t, disk) != before {
		t.Fatal("a read-only inspect of a degraded array changed the image")
	}
	noLeftovers(t, tmp)
}

// TestShellRAID1VM: the interactive shell works on a root on md RAID.
func TestShellRAID1VM(t *testing.T) {
	vmTests(t)
	privateTmp(t)
	info := testimages.InfoOf(t, testimages.RAID1)
	disk := testimages.Fresh(t, testimages.RAID1)
	s := startTmux(t, 100, 30, "shell", "-a", disk)
	s.waitFor("(imgbake)", 2*time.Minute)
	s.send("findmnt -n -o SOURCE /; echo from-the-shell > /root/shell-marker; exit", "Enter")
	scr := s.waitFor("EXIT=", time.Minute)
	if !strings.Contains(scr, "/dev/md0") || !strings.Contains(scr, "EXIT=0") {
		t.Fatalf("shell session:\n%s", scr)
	}
	for _, off := range []int64{info.RootOffset, info.RootMirrorOffset} {
		if b, err := testimages.ReadFileAt(t, disk, off, "/root/shell-marker"); err != nil || string(b) != "from-the-shell\n" {
			t.Errorf("member at %d: the shell's change: %q, %v", off, b, err)
		}
	}
}

// fsOf is the filesystem inspect reports for device.
func fsOf(t *testing.T, rep fsops.Inspection, device string) proto.Filesystem {
	t.Helper()
	for _, f := range rep.Filesystems {
		if f.Device == device {
			return f
		}
	}
	t.Fatalf("no %s in %+v", device, rep.Filesystems)
	return proto.Filesystem{}
}

// TestRAIDMetadataEndVM: arrays whose superblocks sit at the end of their
// members (metadata 1.0 and 0.90, the data from the member's first
// sector) assemble under the number they were made as, on an MBR disk
// whose last member ends where the disk ends, so the whole disk shows the
// same superblock at its end and must not be taken for a member. The
// members are checked with the host's mdadm --examine first; a read-only
// inspect and cat leave them byte-identical.
func TestRAIDMetadataEndVM(t *testing.T) {
	vmTests(t)
	tmp := privateTmp(t)
	vmtest.LookPath(t, "sfdisk", "fdisk")
	vmtest.LookPath(t, "mkfs.ext4", "e2fsprogs")
	for _, tc := range []struct {
		metadata, node string
		m              testimages.MDMember
	}{
		{"1.0", "/dev/md3", testimages.MDMember{Name: "test:3", DevUUID: "5ea1b0d0-0000-4000-8000-0000000009b0"}},
		{"0.90", "/dev/md5", testimages.MDMember{MinorHint: 5}},
	} {
		t.Run(tc.metadata, func(t *testing.T) {
			disk := filepath.Join(t.TempDir(), "disk.raw")
			must(t, os.WriteFile(disk, nil, 0o600))
			must(t, os.Truncate(disk, 64<<20))
			parts := [2][2]int64{{2048, 49152}, {51200, 131072 - 51200}} // the second ends at the disk's end
			sf := exec.Command("sfdisk", "-q", disk)
			sf.Stdin = strings.NewReader("label: dos\nunit: sectors\nstart=2048, size=49152, type=fd\nstart=51200, type=fd\n")
			if out, err := sf.CombinedOutput(); err != nil {
				t.Fatalf("sfdisk: %v %s", err, out)
			}
			const arraySize = 40960 // 20 MiB, within both members
			for i, p := range parts {
				m := tc.m
				m.Metadata, m.UUID, m.Number, m.RaidDisks, m.ArraySize, m.Time = tc.metadata, "5ea1b0d0-0000-4000-8000-0000000009a0", i, 2, arraySize, 1700000000
				if m.DevUUID != "" {
					m.DevUUID = m.DevUUID[:len(m.DevUUID)-1] + fmt.Sprint(i)
				}
				off, n, err := testimages.WriteMDMember(disk, p[0], p[1], m)
				if err != nil || off != 0 || n != arraySize {
					t.Fatalf("member %d: data at %d, %d sectors, %v", i, off, n, err)
				}
			}
			// The array's data: an ext4 filesystem made on the first member,
			// copied onto the second.
			src := t.TempDir()
			must(t, os.WriteFile(filepath.Join(src, "marker"), []byte("metadata "+tc.metadata+"\n"), 0o644))
			if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-d", src, "-E", fmt.Sprintf("offset=%d", parts[0][0]*512),
				disk, fmt.Sprintf("%dk", arraySize/2)).CombinedOutput(); err != nil {
				t.Fatalf("mkfs.ext4: %v %s", err, out)
			}
			f, err := os.OpenFile(disk, os.O_RDWR, 0)
			must(t, err)
			data := make([]byte, arraySize*512)
			_, err = f.ReadAt(data, parts[0][0]*512)
			must(t, err)
			_, err = f.WriteAt(data, parts[1][0]*512)
			must(t, err)
			must(t, f.Close())
			for i, want := range []string{"Version : " + tc.metadata, "Raid Level : raid1", "- correct"} {
				for p := 1; p <= 2; p++ {
					if exam := testimages.MDExamine(t, disk, p); !strings.Contains(exam, want) && (i > 0 || !strings.Contains(exam, "Version : 0.90.00")) {
						t.Fatalf("mdadm --examine of member %d lacks %q:\n%s", p, want, exam)
					}
				}
			}
			before := sha256File(t, disk)

			rep := inspectJSON(t, "-a", disk, "-m", tc.node)
			if md := fsOf(t, rep, tc.node); !jsonEqual(md.MDMembers, []string{"/dev/vda1", "/dev/vda2"}) || md.MDLevel != "raid1" || md.Type != "ext4" {
				t.Errorf("%s: %+v", tc.node, md)
			}
			for _, f := range rep.Filesystems {
				if f.Device == "/dev/vda" {
					t.Errorf("the whole disk was taken for a %q: %+v", f.Type, f)
				}
			}
			r := imgbake(t, "cat", "-a", disk, "-m", tc.node, "/marker")
			wantCode(t, r, 0, "cat")
			if r.stdout != "metadata "+tc.metadata+"\n" {
				t.Errorf("cat /marker = %q", r.stdout)
			}
			if sha256File(t, disk) != before {
				t.Error("a read-only inspect or cat changed the members")
			}
		})
	}
	noLeftovers(t, tmp)
}

// TestRAIDLevelsVM: arrays of the other common levels — raid0 on two
// members, raid5 (left-symmetric) on three, raid10 (near=2) and raid6
// (left-symmetric) on four, 64 KiB chunks, metadata 1.2 — laid out by testimages.StripeMD and checked
// with the host's mdadm --examine, assemble in the appliance (the kernel's
// md reads them), the filesystem on each is inspected and read, and a
// file copied in through it reads back here from the members with
// testimages.UnstripeMD, the raid10 copies equal and the raid5 and raid6
// parity (P and Q) of every row right (the kernel updated it as it
// wrote); fsck finds the array's filesystem clean.
func TestRAIDLevelsVM(t *testing.T) {
	vmTests(t)
	tmp := privateTmp(t)
	vmtest.LookPath(t, "sfdisk", "fdisk")
	vmtest.LookPath(t, "mkfs.ext4", "e2fsprogs")
	const (
		partSectors = 20480 // 10 MiB a member partition
		dataOffset  = 2048  // sectors, metadata 1.2
		used        = 16384 // sectors used on each member
		chunk       = 128   // sectors: 64 KiB
	)
	payload := make([]byte, 700<<10) // spans chunks, rows and members
	rand.New(rand.NewSource(7)).Read(payload)
	for idx, tc := range []struct {
		level   string
		layout  uint32
		members int
		examine []string
	}{
		{"raid0", 0, 2, []string{"Raid Level : raid0", "Chunk Size : 64K"}},
		{"raid5", testimages.MDLeftSymmetric, 3, []string{"Raid Level : raid5", "Layout : left-symmetric", "Chunk Size : 64K"}},
		{"raid10", testimages.MDNear2, 4, []string{"Raid Level : raid10", "Layout : near=2", "Chunk Size : 64K"}},
		{"raid6", testimages.MDLeftSymmetric, 4, []string{"Raid Level : raid6", "Layout : left-symmetric", "Chunk Size : 64K"}},
	} {
		t.Run(tc.level, func(t *testing.T) {
			minor := 20 + idx
			node := fmt.Sprintf("/dev/md%d", minor)
			dir := t.TempDir()
			disk := filepath.Join(dir, "disk.raw")
			must(t, os.WriteFile(disk, nil, 0o600))
			must(t, os.Truncate(disk, int64(2048+tc.members*partSectors+2048)*512))
			table := "label: dos\nunit: sectors\n"
			starts := make([]int64, tc.members)
			for i := range starts {
				starts[i] = int64(2048 + i*partSectors)
				table += fmt.Sprintf("start=%d, size=%d, type=fd\n", starts[i], partSectors)
			}
			sf := exec.Command("sfdisk", "-q", disk)
			sf.Stdin = strings.NewReader(table)
			if out, err := sf.CombinedOutput(); err != nil {
				t.Fatalf("sfdisk: %v %s", err, out)
			}
			for i, start := range starts {
				m := testimages.MDMember{Metadata: "1.2", Level: tc.level, Layout: tc.layout, Chunk: chunk,
					UUID: fmt.Sprintf("5ea1b0d0-0000-4000-8000-0000000009c%d", idx), Name: fmt.Sprintf("test:%d", minor),
					DevUUID: fmt.Sprintf("5ea1b0d0-0000-4000-8000-000000009c%d%d", idx, i), Number: i, RaidDisks: tc.members,
					DataOffset: dataOffset, ArraySize: used, Time: 1700000000}
				if off, n, err := testimages.WriteMDMember(disk, start, partSectors, m); err != nil || off != dataOffset || n != used {
					t.Fatalf("member %d: data at %d, %d sectors, %v", i, off, n, err)
				}
			}
			// The array's content: an ext4 filesystem made in a file, laid
			// out on the members.
			size, err := testimages.MDArrayBytes(tc.level, tc.layout, tc.members, chunk*512, used*512)
			must(t, err)
			src, fsFile := filepath.Join(dir, "src"), filepath.Join(dir, "fs.ext4")
			must(t, os.Mkdir(src, 0o755))
			must(t, os.WriteFile(filepath.Join(src, "marker"), []byte("level "+tc.level+"\n"), 0o644))
			must(t, os.WriteFile(fsFile, nil, 0o600))
			must(t, os.Truncate(fsFile, int64(size)))
			if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-L", tc.level, "-d", src, fsFile).CombinedOutput(); err != nil {
				t.Fatalf("mkfs.ext4: %v %s", err, out)
			}
			data, err := os.ReadFile(fsFile)
			must(t, err)
			areas, err := testimages.StripeMD(tc.level, tc.layout, tc.members, chunk*512, used*512, data)
			must(t, err)
			writeAreas(t, disk, starts, dataOffset, areas)
			for p := 1; p <= tc.members; p++ {
				exam := testimages.MDExamine(t, disk, p)
				for _, want := range append(tc.examine, "Version : 1.2", fmt.Sprintf("Raid Devices : %d", tc.members), "- correct") {
					if !strings.Contains(exam, want) {
						t.Fatalf("mdadm --examine of member %d lacks %q:\n%s", p, want, exam)
					}
				}
			}

			rep := inspectJSON(t, "-a", disk, "-m", node)
			wantMembers := []string{}
			for i := range starts {
				wantMembers = append(wantMembers, fmt.Sprintf("/dev/vda%d", i+1))
			}
			if md := fsOf(t, rep, node); !jsonEqual(md.MDMembers, wantMembers) || md.MDLevel != tc.level || md.Type != "ext4" {
				t.Errorf("%s: %+v", node, md)
			}
			if r := imgbake(t, "cat", "-a", disk, "-m", node, "/marker"); r.code != 0 || r.stdout != "level "+tc.level+"\n" {
				t.Errorf("cat /marker: %s", r)
			}
			host := filepath.Join(dir, "payload.bin")
			must(t, os.WriteFile(host, payload, 0o644))
			wantCode(t, imgbake(t, "copy-in", "-a", disk, "-m", node, host, "/"), 0, "copy-in")
			r := imgbake(t, "fsck", "-a", disk)
			wantCode(t, r, 0, "fsck")
			wantMatch(t, r.stdout, `(?m)^-> `+node+`: clean`, "fsck")

			areas = readAreas(t, disk, starts, dataOffset, used*512)
			if err := testimages.CheckMDRedundancy(tc.level, tc.layout, chunk*512, areas); err != nil {
				t.Error(err)
			}
			back, err := testimages.UnstripeMD(tc.level, tc.layout, chunk*512, areas)
			must(t, err)
			must(t, os.WriteFile(fsFile, back, 0o600))
			if got, err := testimages.ReadFileAt(t, fsFile, 0, "/payload.bin"); err != nil || !bytes.Equal(got, payload) {
				t.Errorf("/payload.bin read back from the members: %d bytes, %v (want the %d copied in)", len(got), err, len(payload))
			}
		})
	}
	noLeftovers(t, tmp)
}

// writeAreas writes each member's data area, dataOffset sectors into the
// partition starting at starts[i].
func writeAreas(t *testing.T, disk string, starts []int64, dataOffset int64, areas [][]byte) {
	t.Helper()
	f, err := os.OpenFile(disk, os.O_WRONLY, 0)
	must(t, err)
	defer f.Close()
	for i, a := range areas {
		_, err := f.WriteAt(a, (starts[i]+dataOffset)*512)
		must(t, err)
	}
}

// readAreas reads back what writeAreas wrote.
func readAreas(t *testing.T, disk string, starts []int64, dataOffset int64, n int) [][]byte {
	t.Helper()
	f, err := os.Open(disk)
	must(t, err)
	defer f.Close()
	out := make([][]byte, len(starts))
	for i, s := range starts {
		out[i] = make([]byte, n)
		_, err := f.ReadAt(out[i], (s+dataOffset)*512)
		must(t, err)
	}
	return out
}
