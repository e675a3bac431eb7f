package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/testimages"
)

// layoutRecipe writes through the facts, runs a command that needs the
// image's own tools and adds a user: what every layout must support.
const layoutRecipe = `name: layout
steps:
  - write: {path: /root/facts, content: "{{ .os.id }} {{ .os.version_id }} {{ .os.family }} {{ .os.package_manager }}\n"}
  - write: {path: /srv/shared/from-recipe, content: "through the bind mount\n"}
    when: os.family == "debian"
  - run: "ls /usr/bin/dpkg > /root/ran && uname -m >> /root/ran"
  - user: {name: ops, shell: /bin/bash}
`

func inspectJSON(t *testing.T, args ...string) fsops.Inspection {
	t.Helper()
	r := imgbake(t, append([]string{"inspect", "--json"}, args...)...)
	wantCode(t, r, 0, "inspect --json")
	var rep fsops.Inspection
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("inspect --json is not one JSON object: %v\n%s", err, r)
	}
	return rep
}

// TestLayoutCentOS6VM: an OS without os-release (CentOS 6 style, root on
// LVM) is found, identified as virt-inspector does (centos 6.10, family
// rhel, yum over rpm), and a recipe runs on it; what it wrote is read back
// with debugfs at the LV's offset.
func TestLayoutCentOS6VM(t *testing.T) {
	vmTests(t)
	tmp := privateTmp(t)
	info := testimages.InfoOf(t, testimages.CentOS6)
	disk := testimages.Fresh(t, testimages.CentOS6)
	before := sha256File(t, disk)

	rep := inspectJSON(t, "-a", disk)
	want := fsops.InspectedOS{ID: "centos", VersionID: "6.10", Name: "CentOS release 6.10 (Final)", IDLike: []string{"rhel", "fedora"},
		Family: "rhel", Root: "/dev/mapper/vg_centos6-lv_root", ReleaseFile: "/etc/centos-release"}
	if !jsonEqual(rep.OS, want) {
		t.Errorf("os %+v\nwant %+v", rep.OS, want)
	}
	if rep.PackageManager != "yum" || rep.PackageFormat != "rpm" || rep.PackageDB != "/var/lib/rpm/Packages" ||
		rep.Hostname != info.Hostname || rep.Arch != "x86_64" {
		t.Errorf("packages %q %q %q, hostname %q, arch %q", rep.PackageManager, rep.PackageFormat, rep.PackageDB, rep.Hostname, rep.Arch)
	}
	if !jsonEqual(rep.Mountpoints, map[string]string{"/": "/dev/mapper/vg_centos6-lv_root", "/boot": "/dev/vda1"}) || len(rep.Warnings) > 0 {
		t.Errorf("mountpoints %v, warnings %q", rep.Mountpoints, rep.Warnings)
	}
	if !slices.Contains(rep.Kernels, "2.6.32-754.el6.x86_64") {
		t.Errorf("kernels %v", rep.Kernels)
	}
	if sha256File(t, disk) != before {
		t.Fatal("inspect changed the image")
	}

	r := imgbake(t, "run", "-a", disk, writeRecipe(t, layoutRecipe))
	wantCode(t, r, 0, "run")
	files := map[string]string{}
	for _, p := range []string{"/root/facts", "/root/ran", "/etc/passwd", "/var/lib/imgbake/state.json"} {
		b, err := testimages.ReadFileAt(t, disk, info.RootOffset, p)
		if err != nil {
			t.Fatalf("reading %s back: %v", p, err)
		}
		files[p] = string(b)
	}
	if files["/root/facts"] != "centos 6.10 rhel yum\n" || files["/root/ran"] != "/usr/bin/dpkg\nx86_64\n" {
		t.Errorf("facts %q, run output %q", files["/root/facts"], files["/root/ran"])
	}
	if !strings.Contains(files["/etc/passwd"], "\nops:x:") || !strings.Contains(files["/var/lib/imgbake/state.json"], `"layout"`) {
		t.Errorf("passwd or run-once state lacks the run:\n%s\n%s", files["/etc/passwd"], files["/var/lib/imgbake/state.json"])
	}
	noLeftovers(t, tmp)
}

// TestLayoutSplitVM: a root that names its OS only once its separate /usr
// is mounted is assembled from fstab (the ESP after /boot though listed
// first, the bind mount after /home, noauto and swap left out, the
// missing nofail entry reported) and a recipe writes to each filesystem
// where fstab puts it: read back partition by partition with debugfs. A
// layout that does not assemble fails, naming what it tried and -m, and
// writes nothing; -m mounts it by hand.
func TestLayoutSplitVM(t *testing.T) {
	vmTests(t)
	tmp := privateTmp(t)
	info := testimages.InfoOf(t, testimages.Split)
	disk := testimages.Fresh(t, testimages.Split)
	before := sha256File(t, disk)

	rep := inspectJSON(t, "-a", disk)
	if rep.OS.ID != "debian" || rep.OS.VersionID != "12" || rep.OS.Family != "debian" || rep.OS.ReleaseFile != "/etc/os-release" ||
		rep.OS.Root != "/dev/vda3" || rep.PackageManager != "apt" || rep.PackageFormat != "deb" || rep.PackageDB != "/var/lib/dpkg/status" ||
		rep.Hostname != info.Hostname {
		t.Errorf("os %+v, packages %q %q %q, hostname %q", rep.OS, rep.PackageManager, rep.PackageFormat, rep.PackageDB, rep.Hostname)
	}
	wantMounts := map[string]string{"/": "/dev/vda3", "/boot": "/dev/vda1", "/boot/efi": "/dev/vda2", "/usr": "/dev/vda4",
		"/var": "/dev/vda5", "/home": "/dev/vda6"}
	if !jsonEqual(rep.Mountpoints, wantMounts) || !jsonEqual(rep.BindMounts, map[string]string{"/srv/shared": "/home/shared"}) {
		t.Errorf("mountpoints %v, bind mounts %v", rep.Mountpoints, rep.BindMounts)
	}
	nofail := fmt.Sprintf("/etc/fstab line 13: UUID=%s for /mnt/backup: no such device in the image (nofail: left unmounted)", info.MissingUUID)
	if !jsonEqual(rep.Warnings, []string{nofail}) {
		t.Errorf("warnings %q, want only %q", rep.Warnings, nofail)
	}
	if sha256File(t, disk) != before {
		t.Fatal("inspect changed the image")
	}

	r := imgbake(t, "run", "-a", disk, writeRecipe(t, layoutRecipe))
	wantCode(t, r, 0, "run")
	read := func(part int, p string) string {
		t.Helper()
		b, err := testimages.ReadFile(t, disk, "raw", part, p)
		if err != nil {
			t.Fatalf("partition %d: reading %s back: %v", part, p, err)
		}
		return string(b)
	}
	if got := read(info.RootPartition, "/root/facts"); got != "debian 12 debian apt\n" {
		t.Errorf("facts %q", got)
	}
	if got := read(info.RootPartition, "/root/ran"); got != "/usr/bin/dpkg\nx86_64\n" {
		t.Errorf("run output %q", got)
	}
	if !strings.Contains(read(info.RootPartition, "/etc/passwd"), "\nops:x:") {
		t.Error("no ops in /etc/passwd")
	}
	if got := read(info.HomePartition, "/shared/from-recipe"); got != "through the bind mount\n" {
		t.Errorf("/home/shared/from-recipe on /home: %q", got)
	}
	if fi, err := testimages.Stat(t, disk, "raw", info.HomePartition, "/ops"); err != nil || !fi.IsDir || fi.UID < 1000 {
		t.Errorf("/home/ops on /home: %+v, %v", fi, err)
	}
	if !strings.Contains(read(info.VarPartition, "/lib/imgbake/state.json"), `"layout"`) {
		t.Error("the run-once state is not on /var")
	}
	for _, p := range []string{"/srv/shared/from-recipe", "/var/lib/imgbake", "/home/ops"} {
		if _, err := testimages.Stat(t, disk, "raw", info.RootPartition, p); err == nil {
			t.Errorf("%s landed on the root filesystem, under its mountpoint", p)
		}
	}

	// Layouts that do not assemble: a required /var that is not there, a
	// /usr holding the os-release that is not there.
	fstabOff := testimages.PartitionOffset(t, disk, info.RootPartition)
	fstabData := read(info.RootPartition, "/etc/fstab")
	for _, tc := range []struct {
		name, old, new string
		wantErr        []string
		manual         []string // -m that mounts it
	}{
		{"required /var missing", "LABEL=var\t/var", "LABEL=gone\t/var",
			[]string{"the root filesystem /dev/vda3 (ext4) was found, but its /etc/fstab does not mount in full",
				"/etc/fstab line 7: LABEL=gone for /var: no such device in the image", "-m DEVICE[:MOUNTPOINT]",
				"/dev/vda1: ext4 without /etc/os-release or a release file"},
			[]string{"-m", "/dev/vda3", "-m", "/dev/vda4:/usr", "-m", "/dev/vda5:/var"}},
		{"/usr with the os-release missing", "UUID=" + uuidOf(t, rep, "/dev/vda4") + "\t/usr", "UUID=0dead000-0000-4000-8000-000000000004\t/usr",
			[]string{"no operating system found", "/dev/vda3: ext4 without /etc/os-release; its /usr did not mount: /etc/fstab line 6: UUID=0dead000-0000-4000-8000-000000000004 for /usr: no such device in the image",
				"/dev/vda4: ext4 without /etc/os-release", "-m DEVICE[:MOUNTPOINT]"},
			[]string{"-m", "/dev/vda3", "-m", "/dev/vda4:/usr"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			broken := filepath.Join(t.TempDir(), "broken.raw")
			if out, err := exec.Command("cp", "--sparse=always", disk, broken).CombinedOutput(); err != nil {
				t.Fatalf("cp: %v %s", err, out)
			}
			if !strings.Contains(fstabData, tc.old) {
				t.Fatalf("fstab lacks %q:\n%s", tc.old, fstabData)
			}
			src := filepath.Join(t.TempDir(), "fstab")
			must(t, os.WriteFile(src, []byte(strings.Replace(fstabData, tc.old, tc.new, 1)), 0o644))
			debugfsWrite(t, fmt.Sprintf("%s?offset=%d", broken, fstabOff), "rm /etc/fstab", "write "+src+" /etc/fstab")
			sum := sha256File(t, broken)
			r := imgbake(t, "run", "-a", broken, writeRecipe(t, layoutRecipe))
			wantCode(t, r, ExitImage, "run on a layout that does not assemble")
			for _, w := range append(tc.wantErr, "/dev/vda1", "/dev/vda2", "/dev/vda4", "/dev/vda8") {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("message lacks %q:\n%s", w, r.stderr)
				}
			}
			if sha256File(t, broken) != sum {
				t.Error("the failed run changed the image")
			}
			manual := inspectJSON(t, append(tc.manual, "-a", broken)...)
			if manual.OS.ID != "debian" || manual.Mountpoints["/usr"] != "/dev/vda4" {
				t.Errorf("inspect %v: os %+v, mountpoints %v", tc.manual, manual.OS, manual.Mountpoints)
			}
		})
	}
	noLeftovers(t, tmp)
}

// uuidOf is the UUID inspect reports for device.
func uuidOf(t *testing.T, rep fsops.Inspection, device string) string {
	t.Helper()
	for _, f := range rep.Filesystems {
		if f.Device == device {
			return f.UUID
		}
	}
	t.Fatalf("no %s in %+v", device, rep.Filesystems)
	return ""
}

// jsonEqual compares two values as JSON would carry them.
func jsonEqual(a, b any) bool {
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	return errA == nil && errB == nil && string(ja) == string(jb)
}
