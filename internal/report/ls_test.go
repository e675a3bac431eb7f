package report

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgbake/imgbake/fsops/fsopstest"
)

// TestLister: names sorted, a directory header with -R or several paths, a
// blank line between directories, symlink targets with -l, and names with
// control characters quoted.
func TestLister(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc/ssh"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"etc/hosts", "etc/ssh/sshd_config", "etc/bad\x1b[2J"} {
		if err := os.WriteFile(filepath.Join(root, f), []byte("x\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("hosts", filepath.Join(root, "etc/link")); err != nil {
		t.Fatal(err)
	}
	s := fsopstest.New(t, root, nil)
	ctx := context.Background()

	var out, errw bytes.Buffer
	l := NewLister(ctx, s, &out, &errw, false, true)
	if err := l.List("/etc", true); err != nil || l.Failed() {
		t.Fatalf("List: %v (failed %v, stderr %q)", err, l.Failed(), errw.String())
	}
	want := "/etc:\n\"bad\\x1b[2J\"\nhosts\nlink\nssh\n\n/etc/ssh:\nsshd_config\n"
	if out.String() != want {
		t.Errorf("ls -R /etc:\n%q\nwant\n%q", out.String(), want)
	}

	out.Reset()
	l = NewLister(ctx, s, &out, &errw, true, false)
	if err := l.List("/etc/link", false); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); !strings.HasPrefix(got, "lrwxrwxrwx ") || !strings.HasSuffix(got, " /etc/link -> hosts\n") {
		t.Errorf("ls -l /etc/link: %q", got)
	}
}
