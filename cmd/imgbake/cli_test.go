package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/imgbake/imgbake/image"
	"github.com/imgbake/imgbake/internal/vmtest"
)

// makeRawDisk creates a small sparse raw file standing in for an image
// where the test never reaches the appliance.
func makeRawDisk(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk.raw")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(8 << 20); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("not touched"), 4096); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return p
}

const goodRecipe = "name: ok\nsteps:\n  - run: \"true\"\n"

// TestBadInput covers every input mistake that must be refused before the
// image is touched: a one-line message, the documented exit code, and the
// disk byte-identical afterwards.
func TestBadInput(t *testing.T) {
	disk := makeRawDisk(t)
	before := sha256File(t, disk)
	good := writeRecipe(t, goodRecipe)
	qcow := filepath.Join(t.TempDir(), "backed.qcow2")
	qemuImg := vmtest.LookPath(t, "qemu-img", "qemu-utils")
	if out, err := exec.Command(qemuImg, "create", "-q", "-f", "qcow2", "-F", "raw", "-b", disk, qcow).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create: %v %s", err, out)
	}

	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string // regexp
	}{
		{"no disk", []string{"run", good}, ExitUsage, `no disk image given: use -a FILE`},
		{"no recipe", []string{"run", "-a", disk}, ExitUsage, `expected exactly one recipe file`},
		{"unknown flag", []string{"run", "--bogus", "-a", disk, good}, ExitUsage, `flag provided but not defined: -bogus`},
		{"bad format value", []string{"run", "-a", disk, "--format", "vmdk", good}, ExitUsage, `--format "vmdk": use raw or qcow2`},
		{"missing disk", []string{"run", "-a", filepath.Join(t.TempDir(), "nope.qcow2"), good}, ExitImage, `disk image not found: .*nope\.qcow2`},
		{"inspect missing disk", []string{"inspect", "-a", "/nonexistent/disk.img"}, ExitImage, `disk image not found`},
		{"directory as disk", []string{"inspect", "-a", t.TempDir()}, ExitImage, `not a regular file`},
		{"raw said to be qcow2", []string{"run", "-a", disk, "--format", "qcow2", good}, ExitImage, `is not a qcow2 image`},
		{"backing file refused", []string{"run", "-a", qcow, good}, ExitImage, `uses backing file .*--allow-backing`},
		{"missing recipe", []string{"run", "-a", disk, "/nonexistent/recipe.yaml"}, ExitUsage, `/nonexistent/recipe.yaml`},
		{"malformed yaml", []string{"run", "-a", disk, writeRecipe(t, "steps:\n  - run: [unclosed\n")}, ExitUsage, `recipe.yaml:\d+:\d+`},
		{"unknown step", []string{"run", "-a", disk, writeRecipe(t, "steps:\n  - frobnicate: yes\n")}, ExitUsage, `recipe.yaml:2:5: .*frobnicate`},
		{"unknown field", []string{"run", "-a", disk, writeRecipe(t, "steps:\n  - write: {path: /a, content: b, colour: red}\n")}, ExitUsage, `recipe.yaml:2:\d+: .*colour`},
		{"two operations", []string{"run", "-a", disk, writeRecipe(t, "steps:\n  - run: x\n    delete: /y\n")}, ExitUsage, `recipe.yaml:\d+:\d+`},
		{"relative image path", []string{"run", "-a", disk, writeRecipe(t, "steps:\n  - delete: etc/x\n")}, ExitUsage, `recipe.yaml:2:\d+: .*absolute`},
		{"bad duration", []string{"run", "-a", disk, writeRecipe(t, "steps:\n  - run: x\n    timeout: soon\n")}, ExitUsage, `recipe.yaml:3:\d+: .*timeout`},
		{"copy_in source missing", []string{"run", "-a", disk, writeRecipe(t, "steps:\n  - copy_in: {src: ./nothere, dest: /opt}\n")}, ExitUsage, `recipe.yaml:2:\d+: .*nothere.*does not exist`},
		{"in-place and output", []string{"run", "--in-place", "-o", filepath.Join(t.TempDir(), "x.qcow2"), "-a", disk, good}, ExitUsage, `exclude each other`},
		{"output exists", []string{"run", "-o", disk, "-a", disk, good}, ExitUsage, `already exists`},
		{"bad -m", []string{"inspect", "-a", disk, "-m", ":/boot"}, ExitUsage, `expected DEVICE\[:MOUNTPOINT\[:OPTIONS\]\]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := imgbake(t, tt.args...)
			if r.code != tt.code {
				t.Fatalf("exit code %d, want %d\n%s", r.code, tt.code, r)
			}
			if !regexp.MustCompile(tt.stderr).MatchString(r.stderr) {
				t.Errorf("stderr does not match %q\n%s", tt.stderr, r)
			}
			if r.stdout != "" && tt.code != ExitOK {
				t.Errorf("unexpected stdout: %q", r.stdout)
			}
		})
	}
	if after := sha256File(t, disk); after != before {
		t.Fatalf("disk changed by refused runs: %s -> %s", before, after)
	}
}

func TestLockedImage(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	disk := makeRawDisk(t)
	before := sha256File(t, disk)
	lock, err := image.Acquire(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Release()
	r := imgbake(t, "run", "-a", disk, writeRecipe(t, goodRecipe))
	if r.code != ExitImage {
		t.Fatalf("exit %d, want %d\n%s", r.code, ExitImage, r)
	}
	if !strings.Contains(r.stderr, "in use") || !strings.Contains(r.stderr, "pid "+strconv.Itoa(os.Getpid())) {
		t.Errorf("message should say the image is in use and name the holder:\n%s", r)
	}
	if sha256File(t, disk) != before {
		t.Fatal("disk changed")
	}
}

func TestHelpDocumentsExitCodes(t *testing.T) {
	r := imgbake(t, "--help")
	if r.code != 0 {
		t.Fatalf("--help: %s", r)
	}
	for _, want := range []string{"EXIT CODES", "0    success", "1    a step failed", "2    bad usage", "3    image or appliance error", "130"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("--help lacks %q:\n%s", want, r.stdout)
		}
	}
	for _, cmd := range []string{"run", "inspect", "appliance"} {
		if !strings.Contains(r.stdout, cmd) {
			t.Errorf("--help does not list %s", cmd)
		}
	}
}

func TestStepsListsEveryKind(t *testing.T) {
	r := imgbake(t, "steps")
	if r.code != 0 {
		t.Fatalf("%s", r)
	}
	for _, k := range []string{"run", "write", "mkdir", "copy_in", "copy_out", "delete", "hostname"} {
		if !regexp.MustCompile(`(?m)^\s*- ` + k + `:`).MatchString(r.stdout) {
			t.Errorf("steps does not list %s:\n%s", k, r.stdout)
		}
	}
}

func TestMissingKernel(t *testing.T) {
	t.Setenv("IMGBAKE_CACHE_DIR", t.TempDir())
	for _, args := range [][]string{
		{"appliance", "build", "--kernel", "/nonexistent/vmlinuz-1"},
		{"appliance", "info", "--kernel", "/nonexistent/vmlinuz-1"},
	} {
		r := imgbake(t, args...)
		if r.code != ExitImage || !strings.Contains(r.stderr, "/nonexistent/vmlinuz-1 does not exist") ||
			!strings.Contains(r.stderr, "linux-image-cloud-amd64") {
			t.Errorf("%v: want exit 3 naming the file and what to install:\n%s", args, r)
		}
	}
}
