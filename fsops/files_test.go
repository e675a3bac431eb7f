package fsops

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imgbake/imgbake/appliance/appliancetest"
)

func TestEditText(t *testing.T) {
	for _, tt := range []struct {
		name, text, re, repl string
		multiline            bool
		want                 string
		n                    int
	}{
		{"per line", "#PermitRootLogin yes\nPort 22\n", `^#?PermitRootLogin .*`, "PermitRootLogin no", false, "PermitRootLogin no\nPort 22\n", 1},
		{"anchors are per line", "a=1\nb=1\na=2", `^a=(\d)$`, "a=${1}0", false, "a=10\nb=1\na=20", 2},
		{"no match", "x\ny\n", `z`, "q", false, "x\ny\n", 0},
		{"groups", "key = value\n", `^(\w+) = (\w+)$`, "$2 = $1", false, "value = key\n", 1},
		{"newline is not part of a line", "a\nb\n", `a\n`, "", false, "a\nb\n", 0},
		{"multiline spans lines", "[s]\nk=v\n[t]\n", `(?s)\[s\].*\[t\]`, "[t]", true, "[t]\n", 1},
		{"multiline without (?m): ^ is the start", "a\na\n", `^a`, "b", true, "b\na\n", 1},
		{"multiline with (?m)", "a\na\n", `(?m)^a`, "b", true, "b\nb\n", 2},
		{"crlf keeps its CR", "a\r\nb\r\n", `^a`, "c", false, "c\r\nb\r\n", 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, n := editText(tt.text, regexp.MustCompile(tt.re), tt.repl, tt.multiline)
			if got != tt.want || n != tt.n {
				t.Errorf("editText = %q, %d; want %q, %d", got, n, tt.want, tt.n)
			}
		})
	}
}

func TestHasLine(t *testing.T) {
	for _, tt := range []struct {
		data, line string
		want       bool
	}{
		{"", "x", false},
		{"x", "x", true},
		{"x\n", "x", true},
		{"a\nx\nb\n", "x", true},
		{"xx\n", "x", false},
		{" x\n", "x", false},
		{"a\r\nx\r\n", "x", true},
	} {
		if got := hasLine([]byte(tt.data), tt.line); got != tt.want {
			t.Errorf("hasLine(%q, %q) = %v", tt.data, tt.line, got)
		}
	}
}

func TestShebang(t *testing.T) {
	for _, tt := range []struct {
		first string
		want  []string
	}{
		{"#!/bin/bash\n", []string{"/bin/bash"}},
		{"#! /bin/sh -e\n", []string{"/bin/sh", "-e"}},
		{"#!/usr/bin/env python3\n", []string{"/usr/bin/env", "python3"}},
		{"#!/usr/bin/env -S bash -eu\r\n", []string{"/usr/bin/env", "-S bash -eu"}},
		{"echo no shebang\n", []string{"/bin/sh"}},
		{"", []string{"/bin/sh"}},
		{"#!\n", []string{"/bin/sh"}},
	} {
		if got := shebang(tt.first); !slices.Equal(got, tt.want) {
			t.Errorf("shebang(%q) = %q, want %q", tt.first, got, tt.want)
		}
	}
}

// filesPipe starts the in-process agent on a fresh directory.
func filesPipe(t *testing.T) (Session, string, context.Context) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "root")
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	s, _ := appliancetest.Start(t, root)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return s, root, ctx
}

func filesMust(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func filesWant(t *testing.T, what string, res Result, err error, changed bool) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if res.Changed != changed {
		t.Errorf("%s: changed = %v, want %v", what, res.Changed, changed)
	}
}

func filesRead(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestAppendLinePipe(t *testing.T) {
	s, root, ctx := filesPipe(t)
	env := filepath.Join(root, "etc/environment")

	res, err := AppendLine(ctx, s, "/etc/environment", "EDITOR=vim")
	filesWant(t, "append to a missing file", res, err, true)
	if got := filesRead(t, env); got != "EDITOR=vim\n" {
		t.Errorf("new file has %q", got)
	}
	res, err = AppendLine(ctx, s, "/etc/environment", "EDITOR=vim")
	filesWant(t, "append again", res, err, false)

	// No trailing newline: one is added before the line. Mode and owner kept.
	filesMust(t, os.WriteFile(env, []byte("A=1"), 0o600))
	filesMust(t, os.Chmod(env, 0o600))
	filesMust(t, os.Chown(env, 12, 34))
	res, err = AppendLine(ctx, s, "/etc/environment", "B=2")
	filesWant(t, "append after an unterminated line", res, err, true)
	if got := filesRead(t, env); got != "A=1\nB=2\n" {
		t.Errorf("file has %q", got)
	}
	fi, _ := os.Stat(env)
	if st := fi.Sys().(*syscall.Stat_t); fi.Mode() != 0o600 || st.Uid != 12 || st.Gid != 34 {
		t.Errorf("mode/owner not kept: %v %d:%d", fi.Mode(), st.Uid, st.Gid)
	}
	res, err = AppendLine(ctx, s, "/etc/environment", "A=1")
	filesWant(t, "a line that is already there", res, err, false)

	// A symlinked file is edited at its target; the link stays.
	filesMust(t, os.MkdirAll(filepath.Join(root, "run"), 0o755))
	filesMust(t, os.Symlink("../run/real.conf", filepath.Join(root, "etc/linked.conf")))
	res, err = AppendLine(ctx, s, "/etc/linked.conf", "nameserver 10.0.0.1")
	filesWant(t, "append through a dangling link", res, err, true)
	if got := filesRead(t, filepath.Join(root, "run/real.conf")); got != "nameserver 10.0.0.1\n" {
		t.Errorf("link target has %q", got)
	}
	if fi, err := os.Lstat(filepath.Join(root, "etc/linked.conf")); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("the link was replaced: %v %v", fi, err)
	}
	if _, err := AppendLine(ctx, s, "/nodir/file", "x"); err == nil {
		t.Error("append into a missing directory succeeded")
	}
}

func TestEditPipe(t *testing.T) {
	s, root, ctx := filesPipe(t)
	cfg := filepath.Join(root, "etc/sshd_config")
	filesMust(t, os.WriteFile(cfg, []byte("Port 22\n#PermitRootLogin yes\nUsePAM yes\n"), 0o640))
	res, err := Edit(ctx, s, "/etc/sshd_config", `^#?PermitRootLogin .*`, "PermitRootLogin no", false)
	filesWant(t, "edit", res, err, true)
	if got := filesRead(t, cfg); got != "Port 22\nPermitRootLogin no\nUsePAM yes\n" {
		t.Errorf("file has %q", got)
	}
	if res.Detail != "1 line changed" {
		t.Errorf("detail %q", res.Detail)
	}
	if fi, _ := os.Stat(cfg); fi.Mode() != 0o640 {
		t.Errorf("mode not kept: %v", fi.Mode())
	}
	res, err = Edit(ctx, s, "/etc/sshd_config", `^#?PermitRootLogin .*`, "PermitRootLogin no", false)
	filesWant(t, "same edit again (matches, identical result)", res, err, false)
	res, err = Edit(ctx, s, "/etc/sshd_config", `^NoSuchOption`, "x", false)
	filesWant(t, "no match", res, err, false)
	res, err = Edit(ctx, s, "/etc/sshd_config", `(?s)Port 22\n.*UsePAM`, "UsePAM", true)
	filesWant(t, "multiline", res, err, true)
	if got := filesRead(t, cfg); got != "UsePAM yes\n" {
		t.Errorf("file has %q", got)
	}
	if _, err := Edit(ctx, s, "/etc/missing", `x`, "y", false); !isNotExist(err) {
		t.Errorf("editing a missing file = %v, want not-exist", err)
	}
	if _, err := Edit(ctx, s, "/etc/sshd_config", `(`, "y", false); err == nil {
		t.Error("bad regexp accepted")
	}
}

func TestUploadPipe(t *testing.T) {
	s, root, ctx := filesPipe(t)
	src := filepath.Join(t.TempDir(), "tool.sh")
	filesMust(t, os.WriteFile(src, []byte("#!/bin/sh\necho tool\n"), 0o750))
	res, err := Upload(ctx, s, src, "/etc/tool.sh", WriteOptions{})
	filesWant(t, "upload", res, err, true)
	fi, err := os.Stat(filepath.Join(root, "etc/tool.sh"))
	if err != nil || fi.Mode() != 0o750 {
		t.Fatalf("new file takes the host file's mode: %v %v", fi, err)
	}
	res, err = Upload(ctx, s, src, "/etc/tool.sh", WriteOptions{})
	filesWant(t, "upload again", res, err, false)
	// An existing file keeps its mode unless one is given.
	filesMust(t, os.Chmod(filepath.Join(root, "etc/tool.sh"), 0o700))
	res, err = Upload(ctx, s, src, "/etc/tool.sh", WriteOptions{})
	filesWant(t, "upload over a file with another mode", res, err, false)
	m := fs.FileMode(0o755)
	res, err = Upload(ctx, s, src, "/etc/tool.sh", WriteOptions{Mode: &m, Owner: "5:6"})
	filesWant(t, "upload with mode and owner", res, err, true)
	fi, _ = os.Stat(filepath.Join(root, "etc/tool.sh"))
	if st := fi.Sys().(*syscall.Stat_t); fi.Mode() != 0o755 || st.Uid != 5 || st.Gid != 6 {
		t.Errorf("mode/owner: %v %d:%d", fi.Mode(), st.Uid, st.Gid)
	}
	// Setuid on the host is not carried into the image.
	filesMust(t, os.Chmod(src, 0o755|fs.ModeSetuid))
	_, err = Upload(ctx, s, src, "/etc/suid.sh", WriteOptions{})
	filesMust(t, err)
	if fi, _ := os.Stat(filepath.Join(root, "etc/suid.sh")); fi.Mode() != 0o755 {
		t.Errorf("setuid carried over: %v", fi.Mode())
	}
	if _, err := Upload(ctx, s, filepath.Dir(src), "/etc/x", WriteOptions{}); err == nil {
		t.Error("uploading a directory succeeded")
	}
}

func TestSmallFileOpsPipe(t *testing.T) {
	s, root, ctx := filesPipe(t)
	// touch
	res, err := Touch(ctx, s, "/etc/flag")
	filesWant(t, "touch", res, err, true)
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	filesMust(t, os.Chtimes(filepath.Join(root, "etc/flag"), old, old))
	res, err = Touch(ctx, s, "/etc/flag")
	filesWant(t, "touch again", res, err, false)
	if fi, _ := os.Stat(filepath.Join(root, "etc/flag")); !fi.ModTime().Equal(old) {
		t.Errorf("touch changed the mtime of an existing file: %v", fi.ModTime())
	}
	// truncate
	filesMust(t, os.WriteFile(filepath.Join(root, "etc/machine-id"), []byte("0123456789abcdef\n"), 0o444))
	res, err = Truncate(ctx, s, "/etc/machine-id")
	filesWant(t, "truncate", res, err, true)
	res, err = Truncate(ctx, s, "/etc/machine-id")
	filesWant(t, "truncate again", res, err, false)
	if fi, _ := os.Stat(filepath.Join(root, "etc/machine-id")); fi.Size() != 0 || fi.Mode() != 0o444 {
		t.Errorf("after truncate: %v", fi)
	}
	// chmod, chown
	res, err = Chmod(ctx, s, "/etc/machine-id", 0o644)
	filesWant(t, "chmod", res, err, true)
	res, err = Chmod(ctx, s, "/etc/machine-id", 0o644)
	filesWant(t, "chmod again", res, err, false)
	res, err = Chown(ctx, s, "/etc/machine-id", "7:8")
	filesWant(t, "chown", res, err, true)
	res, err = Chown(ctx, s, "/etc/machine-id", "7:8")
	filesWant(t, "chown again", res, err, false)
	// link
	res, err = Link(ctx, s, "/usr/share/zoneinfo/UTC", "/etc/localtime")
	filesWant(t, "link", res, err, true)
	res, err = Link(ctx, s, "/usr/share/zoneinfo/UTC", "/etc/localtime")
	filesWant(t, "link again", res, err, false)
	// move
	res, err = Move(ctx, s, "/etc/flag", "/etc/flag.moved")
	filesWant(t, "move", res, err, true)
	res, err = Move(ctx, s, "/etc/flag", "/etc/flag.moved")
	filesWant(t, "move again", res, err, false)
	if _, err := Move(ctx, s, "/etc/none", "/etc/none2"); err == nil {
		t.Error("moving a missing file succeeded")
	}
}

// A move into another filesystem falls back to copy and delete for a
// regular file, keeping mode and owner; other files are refused.
func TestMoveAcrossFilesystemsPipe(t *testing.T) {
	s, root, ctx := filesPipe(t)
	mnt := filepath.Join(root, "mnt")
	filesMust(t, os.Mkdir(mnt, 0o755))
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(mnt, syscall.MNT_DETACH) })
	src := filepath.Join(root, "etc/app.conf")
	filesMust(t, os.WriteFile(src, []byte("key=value\n"), 0o640))
	filesMust(t, os.Chmod(src, 0o640|fs.ModeSetgid))
	filesMust(t, os.Chown(src, 7, 8))
	res, err := Move(ctx, s, "/etc/app.conf", "/mnt/app.conf")
	filesWant(t, "move across filesystems", res, err, true)
	if _, err := os.Lstat(src); !os.IsNotExist(err) {
		t.Errorf("source still there: %v", err)
	}
	fi, err := os.Stat(filepath.Join(mnt, "app.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); fi.Mode() != 0o640|fs.ModeSetgid || st.Uid != 7 || st.Gid != 8 || filesRead(t, filepath.Join(mnt, "app.conf")) != "key=value\n" {
		t.Errorf("moved file: %v %d:%d", fi.Mode(), st.Uid, st.Gid)
	}
	res, err = Move(ctx, s, "/etc/app.conf", "/mnt/app.conf")
	filesWant(t, "move again", res, err, false)
	filesMust(t, os.Mkdir(filepath.Join(root, "etc/dir"), 0o755))
	if _, err := Move(ctx, s, "/etc/dir", "/mnt/dir"); err == nil || !strings.Contains(err.Error(), "only regular files") {
		t.Errorf("moving a directory across filesystems = %v", err)
	}
}
