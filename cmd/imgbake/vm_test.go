package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imgbake/imgbake/appliance"
	"github.com/imgbake/imgbake/internal/vmtest"
	"github.com/imgbake/imgbake/testimages"
)

// everyStepRecipe uses every step kind, and pads to at least 20 steps so
// the one-boot-per-recipe rule is exercised on a realistic recipe.
const everyStepRecipe = `name: every step
steps:
  - name: set the hostname
    hostname: baked.example.org
  - run: echo hello > /root/hello
  - run: id -u > /root/uid && test -s /etc/os-release
  - write:
      path: /etc/motd
      content: "Welcome to a baked image\n"
      mode: "0600"
      owner: root:root
  - write: {path: /etc/deleteme, content: "x"}
  - mkdir: {path: /opt/app/nested/deep, mode: "0750"}
  - copy_in: {src: ./files, dest: /opt/app}
  - copy_in: {src: ./single.conf, dest: /etc}
  - copy_out: {src: /etc/os-release, dest: ./out}
  - copy_out: {src: /opt/app/files, dest: ./out/tree}
  - delete: /root/hello
  - delete: /etc/deleteme
  - delete: /nonexistent/already/gone
  - run: "true"
  - run: "true"
  - run: test "$(cat /etc/hostname)" = baked
  - run: grep -q '^127.0.1.1.*baked.example.org baked' /etc/hosts
  - run: test ! -e /root/hello
  - name: a failing command that is ignored
    run: exit 3
    ignore_errors: true
  - write: {path: /root/last, content: "last step ran\n"}
`

func setupEveryStep(t *testing.T) (recipe, dir string) {
	t.Helper()
	recipe = writeRecipe(t, everyStepRecipe)
	dir = filepath.Dir(recipe)
	must(t, os.MkdirAll(filepath.Join(dir, "files", "sub"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "files", "a.txt"), []byte("file a\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "files", "sub", "run.sh"), []byte("#!/bin/sh\necho run\n"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "single.conf"), []byte("key=value\n"), 0o640))
	return recipe, dir
}

// statAll stats paths in the root filesystem: one verifier VM boot for
// all of them where debugfs cannot read the filesystem.
func statAll(t *testing.T, disk string, info testimages.Info, paths iter.Seq[string]) map[string]testimages.FileInfo {
	t.Helper()
	list := slices.Collect(paths)
	if info.FSType != "ext4" {
		m, err := testimages.StatVM(t, disk, info.Format, info.RootPartition, list...)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	m := map[string]testimages.FileInfo{}
	for _, p := range list {
		if fi, err := testimages.Stat(t, disk, info.Format, info.RootPartition, p); err == nil {
			m[p] = fi
		}
	}
	return m
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestRunEveryStep runs a recipe with every step on all three test images
// in one appliance boot each, then reads the results back with tools that
// share no code with imgbake (debugfs, or the busybox verifier VM).
func TestRunEveryStep(t *testing.T) {
	vmTests(t)
	for _, name := range testimages.Names {
		t.Run(name, func(t *testing.T) {
			tmp := privateTmp(t)
			info := testimages.InfoOf(t, name)
			disk := testimages.Fresh(t, name)
			recipe, dir := setupEveryStep(t)

			boots := appliance.Boots()
			r := imgbake(t, "run", "-v", "-a", disk, recipe)
			if r.code != 0 {
				t.Fatalf("run failed: %s", r)
			}
			if got := appliance.Boots() - boots; got != 1 {
				t.Errorf("a 20-step recipe booted the appliance %d times, want exactly 1", got)
			}
			if n := strings.Count(r.stdout, "\n["); n < 19 {
				t.Errorf("expected one line per step, got %d:\n%s", n+1, r.stdout)
			}
			for _, re := range []string{`(?m)^\[ 1/20\] set the hostname\s+changed\s+\d`, `(?m)^\[19/20\] a failing command that is ignored\s+failed \(ignored\)`,
				`(?m)^\[13/20\] delete: /nonexistent/already/gone\s+ok`, `every step: \d+ ok, \d+ changed, 0 skipped, 0 failed, 1 ignored`} {
				if !regexp.MustCompile(re).MatchString(r.stdout) {
					t.Errorf("stdout does not match %s:\n%s", re, r.stdout)
				}
			}
			if !regexp.MustCompile(`appliance ready in \d`).MatchString(r.stderr) {
				t.Errorf("-v does not print the appliance start timing:\n%s", r.stderr)
			}

			// copy_out results on the host.
			osRelease, err := os.ReadFile(filepath.Join(dir, "out", "os-release"))
			if err != nil || !strings.Contains(string(osRelease), "ID=debian") {
				t.Errorf("copy_out /etc/os-release: %v %q", err, osRelease)
			}
			if b, err := os.ReadFile(filepath.Join(dir, "out", "tree", "files", "sub", "run.sh")); err != nil || string(b) != "#!/bin/sh\necho run\n" {
				t.Errorf("copy_out of a directory: %v %q", err, b)
			} else if fi, _ := os.Stat(filepath.Join(dir, "out", "tree", "files", "sub", "run.sh")); fi.Mode().Perm() != 0o755 {
				t.Errorf("copy_out lost the mode: %v", fi.Mode())
			}

			// The image, read independently.
			files, err := testimages.ReadFiles(t, disk, info.Format, info.RootPartition,
				"/etc/hostname", "/etc/hosts", "/etc/motd", "/root/uid", "/opt/app/files/a.txt",
				"/opt/app/files/sub/run.sh", "/etc/single.conf", "/root/last", "/root/hello", "/etc/deleteme")
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]string{
				"/etc/hostname":             "baked\n",
				"/etc/motd":                 "Welcome to a baked image\n",
				"/root/uid":                 "0\n",
				"/opt/app/files/a.txt":      "file a\n",
				"/opt/app/files/sub/run.sh": "#!/bin/sh\necho run\n",
				"/etc/single.conf":          "key=value\n",
				"/root/last":                "last step ran\n",
			}
			for p, w := range want {
				if got, ok := files[p]; !ok || string(got) != w {
					t.Errorf("%s in the image = %q (present %v), want %q", p, got, ok, w)
				}
			}
			if !strings.Contains(string(files["/etc/hosts"]), "127.0.1.1\tbaked.example.org baked") {
				t.Errorf("/etc/hosts lacks the 127.0.1.1 entry:\n%s", files["/etc/hosts"])
			}
			for _, gone := range []string{"/root/hello", "/etc/deleteme"} {
				if _, ok := files[gone]; ok {
					t.Errorf("%s still exists after delete", gone)
				}
			}
			modes := map[string]uint32{"/etc/motd": 0o600, "/opt/app/nested/deep": 0o750, "/opt/app/files/sub/run.sh": 0o755, "/etc/single.conf": 0o640}
			stats := statAll(t, disk, info, maps.Keys(modes))
			for p, m := range modes {
				fi, ok := stats[p]
				if !ok {
					t.Errorf("stat %s: missing", p)
					continue
				}
				if fi.Perm() != m {
					t.Errorf("%s mode %o, want %o", p, fi.Perm(), m)
				}
			}
			noLeftovers(t, tmp)
		})
	}
}

// TestFstabMountsESP proves the agent mounts fstab entries: a file copied
// to /boot/efi lands on the vfat ESP partition, not in the root fs.
func TestFstabMountsESP(t *testing.T) {
	vmTests(t)
	info := testimages.InfoOf(t, testimages.GPT)
	disk := testimages.Fresh(t, testimages.GPT)
	recipe := writeRecipe(t, "steps:\n  - write: {path: /boot/efi/IMGBAKE.TXT, content: \"on the esp\\n\"}\n  - run: mountpoint -q /boot/efi\n")
	if r := imgbake(t, "run", "-a", disk, recipe); r.code != 0 {
		t.Fatalf("%s", r)
	}
	got, err := testimages.ReadFile(t, disk, info.Format, info.ESPPartition, "/IMGBAKE.TXT")
	if err != nil || string(got) != "on the esp\n" {
		t.Fatalf("ESP file = %q, %v", got, err)
	}
	if _, err := testimages.Stat(t, disk, info.Format, info.RootPartition, "/boot/efi/IMGBAKE.TXT"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("file landed on the root filesystem, not the ESP: %v", err)
	}
}

// TestFailedStepLeavesImageUnchanged: the first failing step stops the
// run, later steps never execute, the error names the step, rc and stderr,
// and the image is byte-identical.
func TestFailedStepLeavesImageUnchanged(t *testing.T) {
	vmTests(t)
	tmp := privateTmp(t)
	disk := testimages.Fresh(t, testimages.NoPart)
	before := sha256File(t, disk)
	recipe := writeRecipe(t, `name: breaks
steps:
  - write: {path: /etc/changed, content: "x"}
  - name: the broken one
    run: echo first line >&2; echo boom is the reason >&2; exit 7
  - write: {path: /etc/never, content: "x"}
`)
	r := imgbake(t, "run", "-a", disk, recipe)
	if r.code != ExitStepFailed {
		t.Fatalf("exit %d, want %d\n%s", r.code, ExitStepFailed, r)
	}
	for _, want := range []string{"[2/3] the broken one", "failed", "rc 7", "stderr: boom is the reason", "left unchanged"} {
		if !strings.Contains(r.stdout+r.stderr, want) {
			t.Errorf("output lacks %q:\n%s", want, r)
		}
	}
	if strings.Contains(r.stdout, "[3/3]") {
		t.Errorf("a step after the failure ran:\n%s", r.stdout)
	}
	if after := sha256File(t, disk); after != before {
		t.Fatal("a failed run changed the image")
	}
	noLeftovers(t, tmp)
}

func TestStepTimeout(t *testing.T) {
	vmTests(t)
	tmp := privateTmp(t)
	disk := testimages.Fresh(t, testimages.NoPart)
	before := sha256File(t, disk)
	recipe := writeRecipe(t, "steps:\n  - run: sleep 600\n    timeout: 2s\n  - run: \"true\"\n")
	start := time.Now()
	r := imgbake(t, "run", "-a", disk, recipe)
	if r.code != ExitStepFailed {
		t.Fatalf("exit %d, want %d\n%s", r.code, ExitStepFailed, r)
	}
	if d := time.Since(start); d > 90*time.Second {
		t.Errorf("a 2s step timeout took %s to stop the run", d)
	}
	if !strings.Contains(r.stdout+r.stderr, "2s") {
		t.Errorf("the failure does not mention the timeout:\n%s", r)
	}
	if sha256File(t, disk) != before {
		t.Fatal("image changed")
	}
	noLeftovers(t, tmp)
}

// TestOutputLeavesInputUntouched covers the golden-image workflow.
func TestOutputLeavesInputUntouched(t *testing.T) {
	vmTests(t)
	info := testimages.InfoOf(t, testimages.GPT)
	disk := testimages.Fresh(t, testimages.GPT)
	before := sha256File(t, disk)
	out := filepath.Join(t.TempDir(), "golden.qcow2")
	recipe := writeRecipe(t, "steps:\n  - write: {path: /etc/golden, content: \"yes\\n\"}\n")
	if r := imgbake(t, "run", "-a", disk, "-o", out, recipe); r.code != 0 {
		t.Fatalf("%s", r)
	}
	if sha256File(t, disk) != before {
		t.Fatal("--output modified the input image")
	}
	got, err := testimages.ReadFile(t, out, "qcow2", info.RootPartition, "/etc/golden")
	if err != nil || string(got) != "yes\n" {
		t.Fatalf("output image /etc/golden = %q, %v", got, err)
	}
	if b, err := exec.Command("qemu-img", "info", "--output=json", out).Output(); err != nil || strings.Contains(string(b), "backing-filename") {
		t.Errorf("output image is not standalone: %v\n%s", err, b)
	}
}

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
					ID        string `json:"id"`
					VersionID string `json:"version_id"`
				} `json:"os"`
				Hostname       string            `json:"hostname"`
				Arch           string            `json:"arch"`
				PackageManager string            `json:"package_manager"`
				Mountpoints    map[string]string `json:"mountpoints"`
				Filesystems    []struct {
					Device, Type, UUID, Label string
				} `json:"filesystems"`
			}
			if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
				t.Fatalf("inspect --json is not one JSON object: %v\n%s", err, r.stdout)
			}
			if got.OS.ID != "debian" || got.OS.VersionID != "12" || got.Hostname != info.Hostname ||
				got.Arch != "x86_64" || got.PackageManager != "apt" {
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
			for _, m := range []string{"vfat", "xfs"} {
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
