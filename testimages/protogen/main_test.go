package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/imgbake/imgbake/internal/vmtest"
)

// makeTree builds a small tree with every kind of entry protogen handles.
func makeTree(t *testing.T) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "root")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "etc"), 0755))
	must(os.WriteFile(filepath.Join(root, "etc", "hostname"), []byte("testhost\n"), 0644))
	must(os.Link(filepath.Join(root, "etc", "hostname"), filepath.Join(root, "etc", "hardlink")))
	must(os.WriteFile(filepath.Join(root, "suid"), []byte("#!/bin/sh\n"), 0755))
	must(os.Chmod(filepath.Join(root, "suid"), 0755|os.ModeSetuid))
	must(os.WriteFile(filepath.Join(root, "sgid"), nil, 0755))
	must(os.Chmod(filepath.Join(root, "sgid"), 0755|os.ModeSetgid))
	must(os.Mkdir(filepath.Join(root, "tmp"), 0755))
	must(os.Chmod(filepath.Join(root, "tmp"), 0777|os.ModeSticky))
	must(os.Mkdir(filepath.Join(root, "mail"), 0775))
	must(os.Chmod(filepath.Join(root, "mail"), 0775|os.ModeSetgid))
	must(os.WriteFile(filepath.Join(root, "mail", "box"), []byte("x"), 0600))
	must(os.Symlink("../usr/lib/os-release", filepath.Join(root, "etc", "os-release")))
	must(os.WriteFile(filepath.Join(root, "with space"), nil, 0644))
	must(syscall.Mkfifo(filepath.Join(root, "fifo"), 0644))
	must(os.Mkdir(filepath.Join(root, "dev"), 0755))
	if os.Geteuid() == 0 {
		must(syscall.Mknod(filepath.Join(root, "dev", "null"), syscall.S_IFCHR|0666, 1<<8|3))
		must(syscall.Mknod(filepath.Join(root, "dev", "sda"), syscall.S_IFBLK|0660, 8<<8|0))
		must(os.Chmod(filepath.Join(root, "dev", "null"), 0666)) // undo the umask
		must(os.Chmod(filepath.Join(root, "dev", "sda"), 0660))
		must(os.Chown(filepath.Join(root, "etc", "hostname"), 0, 42))
	}
	return root
}

func TestGenerate(t *testing.T) {
	root := makeTree(t)
	var out, fix bytes.Buffer
	res, err := Generate(root, &out, &fix)
	if err != nil {
		t.Fatal(err)
	}
	proto := out.String()
	t.Logf("protofile:\n%s\nfixups:\n%s", proto, fix.String())
	want := []string{
		"imgbake-protogen\n0 0\nd--755 ",
		" etc d--755 ",
		"  hostname ---644 ",
		"  hardlink ---644 ",
		"  os-release l--777 0 0 ../usr/lib/os-release\n",
		" suid -u-755 ",
		" sgid --g755 ",
		" tmp d--777 ",
		" mail d-g775 ",
		"  box ---600 ",
		" fifo p--644 ",
	}
	if os.Geteuid() == 0 {
		want = append(want, "  null c--666 0 0 1 3\n", "  sda b--660 0 0 8 0\n", "  hostname ---644 0 42 "+filepath.Join(root, "etc", "hostname")+"\n")
	}
	for _, w := range want {
		if !strings.Contains(proto, w) {
			t.Errorf("protofile lacks %q", w)
		}
	}
	if strings.Contains(proto, "with") {
		t.Errorf("name with a space was not skipped")
	}
	if len(res.Skipped) != 1 || !strings.Contains(res.Skipped[0], "/with space") {
		t.Errorf("skipped = %q", res.Skipped)
	}
	if !strings.HasSuffix(proto, " $\n$\n") {
		t.Errorf("protofile does not end with the closing $ lines")
	}
	uid, gid := os.Geteuid(), os.Getegid()
	for _, w := range []string{
		"/tmp\t41777\t",
		"/mail/box\t100600\t" + strconv.Itoa(uid) + "\t" + strconv.Itoa(gid) + "\n",
	} {
		if !strings.Contains(fix.String(), w) {
			t.Errorf("fixups lack %q", w)
		}
	}
	if res.Fixups != 2 {
		t.Errorf("Fixups = %d, want 2", res.Fixups)
	}
}

// TestMkfsXFS feeds the protofile to mkfs.xfs and checks the result with xfs_db.
func TestMkfsXFS(t *testing.T) {
	for _, tool := range []string{"mkfs.xfs", "xfs_db", "xfs_repair"} {
		vmtest.LookPath(t, tool, "xfsprogs")
	}
	root := makeTree(t)
	dir := t.TempDir()
	var out, fix bytes.Buffer
	if _, err := Generate(root, &out, &fix); err != nil {
		t.Fatal(err)
	}
	proto := filepath.Join(dir, "proto")
	if err := os.WriteFile(proto, out.Bytes(), 0644); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "fs.xfs")
	if err := os.WriteFile(img, nil, 0644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 320<<20); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command("mkfs.xfs", "-q", "-f", "-p", proto, img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.xfs: %v\n%s", err, b)
	}
	args := []string{"-x"}
	for _, line := range strings.Split(strings.TrimSpace(fix.String()), "\n") {
		f := strings.Split(line, "\t")
		args = append(args, "-c", "path "+f[0], "-c", "write core.mode 0"+f[1],
			"-c", "write core.uid "+f[2], "-c", "write core.gid "+f[3])
	}
	args = append(args, img)
	if b, err := exec.Command("xfs_db", args...).CombinedOutput(); err != nil {
		t.Fatalf("xfs_db: %v\n%s", err, b)
	}
	mode := func(p string) string {
		b, err := exec.Command("xfs_db", "-r", "-c", "path "+p, "-c", "print core.mode", img).CombinedOutput()
		if err != nil {
			t.Fatalf("xfs_db %s: %v\n%s", p, err, b)
		}
		return strings.TrimSpace(string(b))
	}
	for p, want := range map[string]string{
		"/tmp":            "core.mode = 041777",
		"/mail":           "core.mode = 042775",
		"/suid":           "core.mode = 0104755",
		"/sgid":           "core.mode = 0102755",
		"/etc/os-release": "core.mode = 0120777",
		"/etc/hostname":   "core.mode = 0100644",
		"/etc/hardlink":   "core.mode = 0100644",
		"/fifo":           "core.mode = 010644",
		"/mail/box":       "core.mode = 0100600",
	} {
		if got := mode(p); got != want {
			t.Errorf("%s: %s, want %s", p, got, want)
		}
	}
	if b, err := exec.Command("xfs_repair", "-n", img).CombinedOutput(); err != nil {
		t.Errorf("xfs_repair -n: %v\n%s", err, b)
	}
}
