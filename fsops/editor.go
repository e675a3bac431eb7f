package fsops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	osexec "os/exec"
	"path/filepath"
)

// HostEditor is $VISUAL, $EDITOR or vi.
func HostEditor() string {
	for _, v := range []string{"VISUAL", "EDITOR"} {
		if e := os.Getenv(v); e != "" {
			return e
		}
	}
	return "vi"
}

// ErrEditorFailed is the error of an editor that exited with an error: the
// file is not written back.
var ErrEditorFailed = errors.New("the editor failed; the image is unchanged")

// EditWithEditor writes data to a private temporary file named base, runs
// the host's editor on it (through sh, so EDITOR may carry arguments, e.g.
// "code --wait") with the given streams, and returns what the file holds
// afterwards. It is EditInPlace's edit function for `imgbake edit`.
func EditWithEditor(ctx context.Context, editor, base string, data []byte, stdin io.Reader, stdout, stderr io.Writer) ([]byte, error) {
	dir, err := os.MkdirTemp("", "imgbake-edit-")
	if err != nil {
		return nil, fmt.Errorf("temporary copy: %w", err)
	}
	defer os.RemoveAll(dir)
	if base == "/" || base == "." || base == "" {
		base = "file"
	}
	tmp := filepath.Join(dir, base)
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return nil, fmt.Errorf("temporary copy: %w", err)
	}
	cmd := osexec.CommandContext(ctx, "/bin/sh", "-c", editor+` "$1"`, "imgbake-edit", tmp)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	if f, ok := stdin.(*os.File); ok {
		cmd.Stdin = f
	}
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrEditorFailed, editor, err)
	}
	out, err := os.ReadFile(tmp)
	if err != nil {
		return nil, fmt.Errorf("reading the edited copy: %w", err)
	}
	return out, nil
}
