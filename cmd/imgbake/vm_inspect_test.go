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

	"github.com/imgbake/imgbake/internal/vmtest"
	"github.com/imgbake/imgbake/testimages"
)

func TestInspectJSON(t *testing.T) {
	vmTests(t)
	for _, name := range testimages.Names {
		t.Run(name, func(t *testing.T) {
			info := testimages.InfoOf(t, name)
			disk := testimages.Fresh(t, name)
			before := sha256File(t, disk)
			r := imgbake(t, "inspect", "--json", "-a", disk)
			if r.code != 0 {
				t.Fatalf("%s", r)
			}
			var got struct {
				OS struct {
					ID          string `json:"id"`
					VersionID   string `json:"version_id"`
					Family      string `json:"family"`
					ReleaseFile string `json:"release_file"`
				} `json:"os"`
				Hostname       string            `json:"hostname"`
				Arch           string            `json:"arch"`
				PackageManager string            `json:"package_manager"`
				PackageFormat  string            `json:"package_format"`
				PackageDB      string            `json:"package_db"`
				Mountpoints    map[string]string `json:"mountpoints"`
				Filesystems    []struct {
					Device, Type, UUID, Label string
				} `json:"filesystems"`
			}
			if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
				t.Fatalf("inspect --json is not one JSON object: %v\n%s", err, r.stdout)
			}
			if got.OS.ID != "debian" || got.OS.VersionID != "12" || got.OS.Family != "debian" || got.OS.ReleaseFile != "/etc/os-release" ||
				got.Hostname != info.Hostname || got.Arch != "x86_64" || got.PackageManager != "apt" || got.PackageFormat != "deb" ||
				got.PackageDB != "/var/lib/dpkg/status" {
				t.Errorf("inspect = %+v", got)
			}
			rootDev := "/dev/vda"
			if info.RootPartition > 0 {
				rootDev = fmt.Sprintf("/dev/vda%d", info.RootPartition)
			}
			if got.Mountpoints["/"] != rootDev {
				t.Errorf("mountpoints = %v, want / on %s", got.Mountpoints, rootDev)
			}
			if info.ESPPartition > 0 && got.Mountpoints["/boot/efi"] != fmt.Sprintf("/dev/vda%d", info.ESPPartition) {
				t.Errorf("mountpoints = %v, want /boot/efi on the ESP", got.Mountpoints)
			}
			var rootFS bool
			for _, f := range got.Filesystems {
				if f.Device == rootDev && f.Type == info.FSType && strings.EqualFold(f.UUID, info.RootUUID) && f.Label == info.Label {
					rootFS = true
				}
			}
			if !rootFS {
				t.Errorf("filesystems lack the root fs %s %s %s: %+v", rootDev, info.FSType, info.RootUUID, got.Filesystems)
			}
			if sha256File(t, disk) != before {
				t.Error("inspect modified the image")
			}
		})
	}
}

// TestNoOperatingSystem: a disk with a filesystem but no OS is refused
// with a message saying what was tried, and is left unchanged.
func TestNoOperatingSystem(t *testing.T) {
	vmTests(t)
	disk := filepath.Join(t.TempDir(), "empty.raw")
	f, err := os.Create(disk)
	must(t, err)
	must(t, f.Truncate(64<<20))
	f.Close()
	if out, err := exec.Command(vmtest.LookPath(t, "mkfs.ext4", "e2fsprogs"), "-q", "-F", "-L", "data", disk).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v %s", err, out)
	}
	before := sha256File(t, disk)
	r := imgbake(t, "run", "-a", disk, writeRecipe(t, goodRecipe))
	if r.code != ExitImage {
		t.Fatalf("exit %d, want %d\n%s", r.code, ExitImage, r)
	}
	if !strings.Contains(r.stderr, "/dev/vda") || !strings.Contains(strings.ToLower(r.stderr), "os-release") {
		t.Errorf("message should name what was tried:\n%s", r)
	}
	if sha256File(t, disk) != before {
		t.Fatal("image changed")
	}
}

// TestMountOverride uses -m like guestfish instead of detection.
func TestMountOverride(t *testing.T) {
	vmTests(t)
	disk := testimages.Fresh(t, testimages.GPT)
	r := imgbake(t, "inspect", "--json", "-a", disk, "-m", "/dev/vda3")
	if r.code != 0 {
		t.Fatalf("%s", r)
	}
	if !strings.Contains(r.stdout, `"/": "/dev/vda3"`) || strings.Contains(r.stdout, `"/boot/efi"`) {
		t.Errorf("-m /dev/vda3 should mount only the root:\n%s", r.stdout)
	}

	// Mount options, as guestfish's -m DEVICE:MOUNTPOINT:OPTIONS: generic
	// flags and the filesystem's own, commas included.
	recipe := writeRecipe(t, "steps:\n  - run: awk '$2 == \"/\" {print $4}' /proc/self/mounts > /etc/root-opts\n")
	if r := imgbake(t, "run", "-a", disk, "-m", "/dev/vda3:/:noatime,errors=remount-ro", recipe); r.code != 0 {
		t.Fatalf("-m with options: %s", r)
	}
	info := testimages.InfoOf(t, testimages.GPT)
	opts, err := testimages.ReadFile(t, disk, "qcow2", info.RootPartition, "/etc/root-opts")
	must(t, err)
	if !strings.Contains(string(opts), "noatime") || !strings.Contains(string(opts), "errors=remount-ro") {
		t.Errorf("the root was mounted with %q, want noatime and errors=remount-ro", opts)
	}
	r = imgbake(t, "ls", "-a", disk, "-m", "/dev/vda3:/:no_such_option=1", "/")
	if r.code != ExitImage || !strings.Contains(r.stderr, `with options "no_such_option=1"`) {
		t.Errorf("a bad mount option: want exit %d naming it: %s", ExitImage, r)
	}
}

// TestJournalOffOnOverlays: with changes going to an overlay, ext4 is
// mounted without its journal (noload, shown as norecovery), and the image
// that is committed is clean; --in-place keeps the journal, and so does a
// filesystem whose journal needs replaying (the replay happens).
func TestJournalOffOnOverlays(t *testing.T) {
	vmTests(t)
	tmp := privateTmp(t)
	for _, tc := range []struct {
		name        string
		args        []string
		needsReplay bool // set the journal's needs_recovery flag first
		journalOff  bool
	}{
		{name: "overlay", journalOff: true},
		{name: "in place", args: []string{"--in-place"}},
		{name: "journal needs replay", needsReplay: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			disk := testimages.Fresh(t, testimages.NoPart)
			if tc.needsReplay {
				debugfsWrite(t, disk, "feature needs_recovery")
			}
			recipe := writeRecipe(t, `name: journal
steps:
  - run: grep ' / ' /proc/mounts > /root/mounts
  - copy_in: {src: ./tree, dest: /opt}
  - delete: /opt/tree/d3
`)
			dir := filepath.Dir(recipe)
			for d := range 5 {
				sub := filepath.Join(dir, "tree", fmt.Sprintf("d%d", d))
				must(t, os.MkdirAll(sub, 0o755))
				for f := range 40 {
					must(t, os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%d", f)), []byte(strings.Repeat("x", f*100)), 0o644))
				}
			}
			r := imgbake(t, append(append([]string{"run"}, tc.args...), "-a", disk, recipe)...)
			wantCode(t, r, 0, "run")
			mounts, err := testimages.ReadFile(t, disk, "raw", 0, "/root/mounts")
			if err != nil {
				t.Fatal(err)
			}
			if off := strings.Contains(string(mounts), "norecovery"); off != tc.journalOff {
				t.Errorf("mounted without the journal: %v, want %v: %s", off, tc.journalOff, mounts)
			}
			if got, err := testimages.ReadFile(t, disk, "raw", 0, "/opt/tree/d4/f39"); err != nil || len(got) != 3900 {
				t.Errorf("/opt/tree/d4/f39: %d bytes, %v", len(got), err)
			}
			if _, err := testimages.Stat(t, disk, "raw", 0, "/opt/tree/d3"); err == nil {
				t.Error("/opt/tree/d3 was not deleted")
			}
			if out, err := exec.Command("e2fsck", "-f", "-n", disk).CombinedOutput(); err != nil {
				t.Errorf("e2fsck -fn: %v\n%s", err, out)
			}
			out, err := exec.Command("dumpe2fs", "-h", disk).CombinedOutput()
			if err != nil {
				t.Fatalf("dumpe2fs: %v\n%s", err, out)
			}
			if strings.Contains(string(out), "needs_recovery") {
				t.Errorf("the image's journal still needs replaying:\n%s", out)
			}
		})
	}
	noLeftovers(t, tmp)
}

// TestWarmStartHasFilesystemDrivers: the boot saved for warm starts loads
// the vfat and xfs drivers, so a restored appliance has them before any
// mount asks (an ext4-only image needs neither); a cold boot loads
// drivers only on first use.
func TestWarmStartHasFilesystemDrivers(t *testing.T) {
	vmTests(t)
	recipe := writeRecipe(t, "name: modules\nsteps:\n  - run: cut -d' ' -f1 /proc/modules > /root/modules\n")
	for _, tc := range []struct {
		name string
		cold bool
	}{{"warm start", false}, {"cold boot", true}} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.cold {
				t.Setenv("IMGBAKE_COLD", "1")
			}
			disk := testimages.Fresh(t, testimages.NoPart)
			r := imgbake(t, "run", "-v", "-a", disk, recipe)
			wantCode(t, r, 0, "run")
			if strings.Contains(r.stderr, "cold boot") != tc.cold {
				t.Fatalf("cold boot: want %v:\n%s", tc.cold, r.stderr)
			}
			b, err := testimages.ReadFile(t, disk, "raw", 0, "/root/modules")
			if err != nil {
				t.Fatal(err)
			}
			mods := strings.Fields(string(b))
			for _, m := range []string{"vfat", "xfs", "btrfs"} {
				if loaded := slices.Contains(mods, m); loaded != !tc.cold {
					t.Errorf("%s loaded: %v, want %v (modules: %s)", m, loaded, !tc.cold, strings.Join(mods, " "))
				}
			}
		})
	}
}

// TestShutdownStopsLeftoverProcesses: a step may leave a process running
// in the image (a daemon a postinst started); shutdown stops it so the
// filesystems unmount and the image is committed.
func TestShutdownStopsLeftoverProcesses(t *testing.T) {
	vmTests(t)
	disk := testimages.Fresh(t, testimages.NoPart)
	recipe := writeRecipe(t, `name: leftover
steps:
  - run: cd /root && setsid sleep 600 </dev/null >/dev/null 2>&1 &
  - write: {path: /root/after, content: "done\n"}
`)
	r := imgbake(t, "run", "-a", disk, recipe)
	wantCode(t, r, 0, "run")
	if b, err := testimages.ReadFile(t, disk, "raw", 0, "/root/after"); err != nil || string(b) != "done\n" {
		t.Errorf("/root/after: %q, %v", b, err)
	}
}
