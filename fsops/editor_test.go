package fsops

import (
	"bytes"
	"context"
	"errors"
	"os"
	"testing"
)

// TestEditWithEditor: the editor runs through sh on a private copy named
// like the image's file; what it leaves is returned, a failing editor is
// ErrEditorFailed, and the copy is gone afterwards either way.
func TestEditWithEditor(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	var out, errw bytes.Buffer
	got, err := EditWithEditor(context.Background(), `sed -i -e s/a/b/ -e "1i $(basename "$1") $(stat -c %a "$1")"`, "hosts", []byte("a\n"), nil, &out, &errw)
	if err != nil || string(got) != "hosts 600\nb\n" {
		t.Errorf("EditWithEditor = %q, %v (stderr %q), want the edited private copy named hosts", got, err, errw.String())
	}
	if _, err := EditWithEditor(context.Background(), "false", "hosts", []byte("a\n"), nil, &out, &errw); !errors.Is(err, ErrEditorFailed) {
		t.Errorf("a failing editor: %v, want ErrEditorFailed", err)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("temporary copies left behind: %v", left)
	}
}

func TestHostEditor(t *testing.T) {
	t.Setenv("VISUAL", "")
	t.Setenv("EDITOR", "")
	if e := HostEditor(); e != "vi" {
		t.Errorf("no VISUAL or EDITOR: %q, want vi", e)
	}
	t.Setenv("EDITOR", "nano")
	if e := HostEditor(); e != "nano" {
		t.Errorf("EDITOR=nano: %q", e)
	}
	t.Setenv("VISUAL", "code --wait")
	if e := HostEditor(); e != "code --wait" {
		t.Errorf("VISUAL wins over EDITOR: %q", e)
	}
}
