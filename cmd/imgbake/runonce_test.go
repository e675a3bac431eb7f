package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imgbake/imgbake/internal/vmtest"
	"github.com/imgbake/imgbake/testimages"
)

// tinyImage makes a small ext4 "OS" with only what root detection needs,
// so a full disk is cheap to reach.
func tinyImage(t *testing.T, sizeMiB int) string {
	t.Helper()
	root := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(root, "etc"), 0o755))
	must(t, os.WriteFile(filepath.Join(root, "etc", "os-release"), []byte("ID=tiny\nVERSION_ID=1\nNAME=Tiny\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(root, "etc", "fstab"), []byte("LABEL=tiny / ext4 defaults 0 1\n"), 0o644))
	disk := filepath.Join(t.TempDir(), "tiny.raw")
	out, err := exec.Command(vmtest.LookPath(t, "mkfs.ext4", "e2fsprogs"), "-q", "-F", "-L", "tiny", "-d", root, disk, fmt.Sprintf("%dM", sizeMiB)).CombinedOutput()
	if err != nil {
		t.Fatalf("mkfs.ext4 -d: %v %s", err, out)
	}
	return disk
}

// TestDiskFull: a full filesystem fails the step with the ENOSPC message;
// with ignore_errors the run goes on and later steps work once space is freed.
func TestDiskFull(t *testing.T) {
	vmTests(t)
	tmp := privateTmp(t)
	disk := tinyImage(t, 16)
	before := sha256File(t, disk)
	big := filepath.Join(t.TempDir(), "big.bin")
	f, err := os.Create(big)
	must(t, err)
	must(t, f.Truncate(40<<20)) // sparse on the host, 40 MiB of data in the guest
	f.Close()
	recipe := writeRecipe(t, fmt.Sprintf("steps:\n  - copy_in: {src: %s, dest: /}\n", big))
	r := imgbake(t, "run", "-a", disk, recipe)
	if r.code != ExitStepFailed || !strings.Contains(r.stdout+r.stderr, "no space left on device") {
		t.Fatalf("want a failed step saying no space left on device:\n%s", r)
	}
	if sha256File(t, disk) != before {
		t.Fatal("image changed by a failed run")
	}
	recipe = writeRecipe(t, fmt.Sprintf(`steps:
  - copy_in: {src: %s, dest: /}
    ignore_errors: true
  - write: {path: /after-full, content: "still works\n"}
    ignore_errors: true
  - delete: /big.bin
  - write: {path: /after-free, content: "works again\n"}
`, big))
	r = imgbake(t, "run", "-a", disk, recipe)
	if r.code != 0 {
		t.Fatalf("%s", r)
	}
	got, err := testimages.ReadFile(t, disk, "raw", 0, "/after-free")
	if err != nil || string(got) != "works again\n" {
		t.Fatalf("/after-free = %q, %v", got, err)
	}
	if _, err := testimages.ReadFile(t, disk, "raw", 0, "/big.bin"); err == nil {
		t.Error("the partial file is still there")
	}
	noLeftovers(t, tmp)
}

// TestRunOnce: a recipe applied once is not applied again; --force does.
func TestRunOnce(t *testing.T) {
	vmTests(t)
	disk := testimages.Fresh(t, testimages.NoPart)
	recipe := writeRecipe(t, "name: once\nsteps:\n  - run: echo ran >> /root/count\n")
	if r := imgbake(t, "run", "-a", disk, recipe); r.code != 0 {
		t.Fatalf("%s", r)
	}
	applied := sha256File(t, disk)
	r := imgbake(t, "run", "-a", disk, recipe)
	if r.code != 0 || !strings.Contains(r.stdout, "already applied") {
		t.Fatalf("second run should report already applied:\n%s", r)
	}
	if sha256File(t, disk) != applied {
		t.Fatal("an already-applied recipe changed the image")
	}
	if r := imgbake(t, "run", "--force", "-a", disk, recipe); r.code != 0 || strings.Contains(r.stdout, "already applied") {
		t.Fatalf("--force should run again:\n%s", r)
	}
	files, err := testimages.ReadFiles(t, disk, "raw", 0, "/root/count", "/var/lib/imgbake/state.json")
	must(t, err)
	if string(files["/root/count"]) != "ran\nran\n" {
		t.Errorf("/root/count = %q, want two runs", files["/root/count"])
	}
	var st struct {
		Recipe       string `json:"recipe"`
		RecipeSHA256 string `json:"recipe_sha256"`
		Status       string `json:"status"`
		StepsDone    int    `json:"steps_done"`
		History      []any  `json:"history"`
	}
	if err := json.Unmarshal(files["/var/lib/imgbake/state.json"], &st); err != nil {
		t.Fatalf("state.json: %v\n%s", err, files["/var/lib/imgbake/state.json"])
	}
	if st.Recipe != "once" || st.Status != "complete" || st.StepsDone != 1 || len(st.RecipeSHA256) != 64 || len(st.History) != 1 {
		t.Errorf("state.json = %+v", st)
	}
}

// TestInPlaceResume: an --in-place run that stops part way is detected by
// the next run; the same recipe resumes after the last finished step, a
// different one is refused unless --force.
func TestInPlaceResume(t *testing.T) {
	vmTests(t)
	disk := testimages.Fresh(t, testimages.NoPart)
	dir := t.TempDir()
	recipe := filepath.Join(dir, "r.yaml")
	must(t, os.WriteFile(recipe, []byte(`name: resumable
steps:
  - run: echo one >> /root/log
  - run: test -e /root/go-on
  - run: echo three >> /root/log
`), 0o644))
	r := imgbake(t, "run", "--in-place", "-a", disk, recipe)
	if r.code != ExitStepFailed || !strings.Contains(r.stderr, "--in-place") {
		t.Fatalf("%s", r)
	}
	other := writeRecipe(t, "name: other\nsteps:\n  - run: \"true\"\n")
	r = imgbake(t, "run", "-a", disk, other)
	if r.code != ExitImage || !strings.Contains(r.stderr, `run of recipe "resumable" stopped after step 1 of 3`) {
		t.Fatalf("a different recipe should be refused:\n%s", r)
	}
	// Fix the cause inside the image by hand, then re-run the same recipe.
	fix := writeRecipe(t, "name: fix\nsteps:\n  - run: touch /root/go-on\n")
	if r := imgbake(t, "run", "--force", "--in-place", "-a", disk, fix); r.code != 0 {
		t.Fatalf("%s", r)
	}
	// The state now records "fix" as complete; the original recipe runs in full again.
	if r := imgbake(t, "run", "--in-place", "-a", disk, recipe); r.code != 0 {
		t.Fatalf("%s", r)
	}
	got, err := testimages.ReadFile(t, disk, "raw", 0, "/root/log")
	must(t, err)
	if string(got) != "one\none\nthree\n" {
		t.Errorf("/root/log = %q", got)
	}

	// Resume proper: stop at step 2 again, then make step 2 pass from the
	// host side by editing nothing but the image, and re-run the same recipe.
	disk2 := testimages.Fresh(t, testimages.NoPart)
	r = imgbake(t, "run", "--in-place", "-a", disk2, recipe)
	if r.code != ExitStepFailed {
		t.Fatalf("%s", r)
	}
	// Same bytes, same recipe: the resumed run starts at step 2. It still
	// fails there (nothing fixed it), and step 1 must not run twice.
	r = imgbake(t, "run", "--in-place", "-a", disk2, recipe)
	if !strings.Contains(r.stderr, "resuming at step 2") || strings.Contains(r.stdout, "[1/3]") {
		t.Errorf("the same recipe should resume at step 2:\n%s", r)
	}
	got, err = testimages.ReadFile(t, disk2, "raw", 0, "/root/log")
	must(t, err)
	if string(got) != "one\n" {
		t.Errorf("/root/log = %q, step 1 ran twice", got)
	}
}

// TestInterruptedCommit: a journal left by a run killed while committing
// makes inspect refuse and the next run complete the commit.
func TestInterruptedCommit(t *testing.T) {
	vmTests(t)
	tmp := privateTmp(t)
	disk := testimages.Fresh(t, testimages.NoPart)
	runDir := filepath.Join(tmp, "imgbake-run-killed")
	must(t, os.Mkdir(runDir, 0o700))
	must(t, os.WriteFile(filepath.Join(runDir, ".keep"), nil, 0o600))
	overlay := filepath.Join(runDir, "overlay.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", disk, overlay).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	// A pattern in the last MiB of the disk: past the end of the ext4 data
	// the test image uses.
	const off = (1 << 30) - (1 << 20)
	if out, err := exec.Command("qemu-io", "-f", "qcow2", "-c", fmt.Sprintf("write -P 0x5a %d 4096", off), overlay).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	journal := filepath.Join(filepath.Dir(disk), "."+filepath.Base(disk)+".imgbake-commit")
	j, _ := json.Marshal(map[string]any{"image": disk, "overlay": overlay, "base_format": "raw", "pid": 999999, "started": time.Now().UTC()})
	must(t, os.WriteFile(journal, j, 0o600))

	if r := imgbake(t, "inspect", "-a", disk); r.code != ExitImage || !strings.Contains(r.stderr, "interrupted") {
		t.Fatalf("inspect should refuse an image with an interrupted commit:\n%s", r)
	}
	r := imgbake(t, "run", "-a", disk, writeRecipe(t, goodRecipe))
	if r.code != 0 || !strings.Contains(r.stderr, "completing that commit") {
		t.Fatalf("run should complete the interrupted commit:\n%s", r)
	}
	f, err := os.Open(disk)
	must(t, err)
	defer f.Close()
	buf := make([]byte, 4096)
	_, err = f.ReadAt(buf, off)
	must(t, err)
	if !bytes.Equal(buf, bytes.Repeat([]byte{0x5a}, 4096)) {
		t.Error("the interrupted commit was not completed")
	}
	if _, err := os.Stat(journal); !os.IsNotExist(err) {
		t.Error("the journal is still there")
	}
	noLeftovers(t, tmp)
}
