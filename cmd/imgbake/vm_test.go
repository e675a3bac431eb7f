package main

import (
	"errors"
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
