package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/imgbake/imgbake/testimages"
)

// allocated is how much host disk a (sparse) file takes.
func allocated(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	must(t, err)
	return fi.Sys().(*syscall.Stat_t).Blocks * 512
}

// extUsedBytes reads an ext filesystem's used bytes with dumpe2fs (e2fsprogs,
// not imgbake): block count minus free blocks, times the block size.
func extUsedBytes(t *testing.T, raw string) int64 {
	t.Helper()
	f := dumpe2fsFields(t, raw, "Block count", "Free blocks", "Block size")
	return (f[0] - f[1]) * f[2]
}

// dumpe2fsFields reads numeric fields of an ext superblock with dumpe2fs.
func dumpe2fsFields(t *testing.T, dev string, names ...string) []int64 {
	t.Helper()
	out, err := exec.Command("dumpe2fs", "-h", dev).Output()
	must(t, err)
	var vals []int64
	for _, name := range names {
		m := regexp.MustCompile(`(?m)^` + name + `:\s+(\d+)`).FindSubmatch(out)
		if m == nil {
			t.Fatalf("dumpe2fs %s: no %s in\n%s", dev, name, out)
		}
		n, _ := strconv.ParseInt(string(m[1]), 10, 64)
		vals = append(vals, n)
	}
	return vals
}

// qemuImgFormat is the format qemu-img finds in a file (it probes: only
// for reading back a test's output).
func qemuImgFormat(t *testing.T, path string) (format, createType string) {
	t.Helper()
	out, err := exec.Command("qemu-img", "info", "--output=json", path).Output()
	must(t, err)
	var info struct {
		Format         string `json:"format"`
		FormatSpecific struct {
			Data struct {
				CreateType string `json:"create-type"`
			} `json:"data"`
		} `json:"format-specific"`
	}
	must(t, json.Unmarshal(out, &info))
	return info.Format, info.FormatSpecific.Data.CreateType
}

// TestExportSparseAndCompressed: a 200 MiB file is written and committed,
// then deleted in a run that exports: the output holds only the used
// blocks (free space trimmed), --compress makes it smaller still, and
// sparsify --in-place gives the space back to the host.
func TestExportSparseAndCompressed(t *testing.T) {
	vmTests(t)
	disk := testimages.Fresh(t, testimages.NoPart)
	fill := writeRecipe(t, "steps:\n  - run: dd if=/dev/urandom of=/var/tmp/big bs=1M count=200 status=none\n")
	if r := imgbake(t, "run", "-a", disk, fill); r.code != 0 {
		t.Fatalf("fill: %s", r)
	}
	filled := allocated(t, disk)
	del := writeRecipe(t, "steps:\n  - delete: /var/tmp/big\n")
	dir := t.TempDir()
	out, outC := filepath.Join(dir, "out.qcow2"), filepath.Join(dir, "outc.qcow2")
	if r := imgbake(t, "run", "--json", "-a", disk, "-o", out, del); r.code != 0 {
		t.Fatalf("export: %s", r)
	} else if !regexp.MustCompile(`(?m)^\{"event":"progress",.*"phase":"writing [^"]*out.qcow2","percent":100\}$`).MatchString(r.stdout) {
		t.Errorf("--json reported no progress of the export reaching 100%%:\n%s", r.stdout)
	}
	if r := imgbake(t, "run", "-a", disk, "-o", outC, "--compress", del); r.code != 0 {
		t.Fatalf("compressed export: %s", r)
	}
	raw := filepath.Join(dir, "out.raw")
	if b, err := exec.Command("qemu-img", "convert", "-f", "qcow2", "-O", "raw", out, raw).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert: %v %s", err, b)
	}
	if _, err := testimages.ReadFile(t, raw, "raw", 0, "/var/tmp/big"); err == nil {
		t.Fatal("the deleted file is still in the output")
	}
	used := extUsedBytes(t, raw)
	size, sizeC := allocated(t, out), allocated(t, outC)
	t.Logf("filled input %d MiB; used %d MiB; output %d MiB; compressed %d MiB", filled>>20, used>>20, size>>20, sizeC>>20)
	if limit := used + used/20; size > limit {
		t.Errorf("output takes %d bytes, more than the used blocks + 5%% (%d)", size, limit)
	}
	if sizeC >= size {
		t.Errorf("--compress did not make the output smaller: %d >= %d", sizeC, size)
	}

	if r := imgbake(t, "run", "-a", disk, del); r.code != 0 {
		t.Fatalf("delete: %s", r)
	}
	r := imgbake(t, "sparsify", "-a", disk, "--in-place")
	if r.code != 0 {
		t.Fatalf("sparsify --in-place: %s", r)
	}
	if after := allocated(t, disk); after > filled-150<<20 {
		t.Errorf("sparsify --in-place: the image takes %d MiB, was %d MiB with the 200 MiB file deleted", after>>20, filled>>20)
	}
	if !strings.Contains(r.stderr, "discarded") {
		t.Errorf("sparsify did not report what it discarded:\n%s", r)
	}
}

// vhdFooter reports whether a file ends in a VHD footer ("conectix").
func vhdFooter(t *testing.T, path string) bool {
	t.Helper()
	f, err := os.Open(path)
	must(t, err)
	defer f.Close()
	fi, err := f.Stat()
	must(t, err)
	footer := make([]byte, 8)
	_, err = f.ReadAt(footer, fi.Size()-512)
	return err == nil && string(footer) == "conectix"
}

// TestOutputFormats: each output format is what qemu-img calls it, the
// checksum verifies with sha256sum, and bad output flags change nothing.
func TestOutputFormats(t *testing.T) {
	vmTests(t)
	disk := testimages.Fresh(t, testimages.NoPart)
	before := sha256File(t, disk)
	recipe := writeRecipe(t, "steps:\n  - write: {path: /etc/exported, content: \"yes\\n\"}\n")
	dir := t.TempDir()
	cases := []struct {
		file, flags, format, createType string
	}{
		{"a.vmdk", "", "vmdk", "monolithicSparse"},
		{"b.vmdk", "--output-options=subformat=streamOptimized", "vmdk", "streamOptimized"},
		{"c.vhdx", "", "vhdx", ""},
		{"d.vdi", "", "vdi", ""},
		{"e.vhd", "--output-options=subformat=fixed,force_size=on", "vpc", "fixed"},
		{"f.raw", "", "raw", ""},
		{"g.img", "--output-format=qcow2", "qcow2", ""},
	}
	for _, c := range cases {
		out := filepath.Join(dir, c.file)
		args := []string{"run", "-a", disk, "-o", out, "--checksum"}
		if c.flags != "" {
			args = append(args, c.flags)
		}
		if r := imgbake(t, append(args, recipe)...); r.code != 0 {
			t.Fatalf("%s: %s", c.file, r)
		}
		format, createType := qemuImgFormat(t, out)
		if c.createType == "fixed" && format == "raw" && vhdFooter(t, out) {
			// qemu-img's probe cannot see a fixed VHD (its only header
			// is the footer): the footer says it is one.
			format, createType = "vpc", "fixed"
		}
		if format != c.format || (c.createType != "" && createType != c.createType) {
			t.Errorf("%s: qemu-img info says %s %s, want %s %s", c.file, format, createType, c.format, c.createType)
		}
		cmd := exec.Command("sha256sum", "-c", c.file+".sha256")
		cmd.Dir = dir
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s: sha256sum -c: %v %s", c.file, err, b)
		}
	}
	if sha256File(t, disk) != before {
		t.Fatal("exports modified the input image")
	}
	for _, bad := range [][]string{
		{"-o", filepath.Join(dir, "x.foo")},
		{"-o", filepath.Join(dir, "x.vdi"), "--compress"},
		{"-o", filepath.Join(dir, "x.qcow2"), "--output-options", "backing_file=/etc/passwd"},
		{"--compress"},
		{"--output-format", "vmdk"},
		{"-o", filepath.Join(dir, "x.qcow2"), "--output-format", "nope"},
	} {
		r := imgbake(t, append(append([]string{"run", "-a", disk}, bad...), recipe)...)
		if r.code != 2 {
			t.Errorf("%v: exit %d, want 2 (usage)\n%s", bad, r.code, r)
		}
	}
	if entries, _ := filepath.Glob(filepath.Join(dir, "x.*")); len(entries) != 0 {
		t.Errorf("refused runs left files: %v", entries)
	}
}

// TestManifest: the manifest names input and output by their sha256, the
// recipe, each step's result and the packages of the image's dpkg
// database (read back with debugfs).
func TestManifest(t *testing.T) {
	vmTests(t)
	disk := testimages.Fresh(t, testimages.NoPart)
	inSum := sha256File(t, disk)
	dir := t.TempDir()
	out, manPath := filepath.Join(dir, "out.qcow2"), filepath.Join(dir, "manifest.json")
	recipe := writeRecipe(t, "name: manifest test\nsteps:\n  - name: a file\n    write: {path: /etc/m, content: \"m\\n\"}\n  - run: \"true\"\n    changed_when: false\n")
	if r := imgbake(t, "run", "-a", disk, "-o", out, "--manifest", manPath, recipe); r.code != 0 {
		t.Fatalf("%s", r)
	}
	data, err := os.ReadFile(manPath)
	must(t, err)
	var m struct {
		Imgbake string
		Inputs  []struct{ Path, Format, SHA256 string }
		Output  struct {
			Path, Format, SHA256 string
			VirtualSize          int64 `json:"virtual_size"`
		}
		Recipe struct{ Name, File, SHA256 string }
		Steps  []struct {
			Index              int
			Name, Kind, Status string
		}
		Packages struct {
			Database string
			Packages []struct{ Name, Version, Arch string }
		}
	}
	must(t, json.Unmarshal(data, &m))
	if len(m.Inputs) != 1 || m.Inputs[0].SHA256 != inSum || m.Inputs[0].Format != "raw" {
		t.Errorf("inputs = %+v, want sha256 %s raw", m.Inputs, inSum)
	}
	if m.Output.SHA256 != sha256File(t, out) || m.Output.Format != "qcow2" || m.Output.VirtualSize <= 0 {
		t.Errorf("output = %+v", m.Output)
	}
	if m.Recipe.Name != "manifest test" || m.Recipe.SHA256 != sha256File(t, recipe) {
		t.Errorf("recipe = %+v", m.Recipe)
	}
	if len(m.Steps) != 2 || m.Steps[0].Kind != "write" || m.Steps[0].Status != "changed" || m.Steps[0].Name != "a file" ||
		m.Steps[1].Kind != "run" || m.Steps[1].Status != "ok" {
		t.Errorf("steps = %+v", m.Steps)
	}
	status, err := testimages.ReadFile(t, disk, "raw", 0, "/var/lib/dpkg/status")
	must(t, err)
	want := map[string]string{}
	for _, stanza := range strings.Split(string(status), "\n\n") {
		name := regexp.MustCompile(`(?m)^Package: (.+)$`).FindStringSubmatch(stanza)
		ver := regexp.MustCompile(`(?m)^Version: (.+)$`).FindStringSubmatch(stanza)
		if name != nil && ver != nil && strings.Contains(stanza, "Status: install ok installed") {
			want[name[1]] = ver[1]
		}
	}
	got := map[string]string{}
	for _, p := range m.Packages.Packages {
		got[p.Name] = p.Version
	}
	if m.Packages.Database != "dpkg" || len(want) < 50 || len(got) != len(want) {
		t.Fatalf("packages: %s, %d listed, the image's dpkg status has %d", m.Packages.Database, len(got), len(want))
	}
	for n, v := range want {
		if got[n] != v {
			t.Errorf("package %s: manifest %q, dpkg status %q", n, got[n], v)
		}
	}
}
