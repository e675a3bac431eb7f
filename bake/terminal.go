package bake

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/term"

	"github.com/imgbake/imgbake/fsops"
)

// The terminal of `imgbake shell`.

// InteractiveShell picks the image's interactive shell, if it has a usable
// one (imgbake shell falls back to the rescue shell).
func (img *Image) InteractiveShell(ctx context.Context) (string, bool) {
	for _, sh := range []string{"/bin/bash", "/bin/sh"} {
		// A real start, not a stat: a dangling /bin/sh -> dash or a shell
		// missing its libraries must fall back to the rescue shell.
		res, err := fsops.Exec(ctx, img.Session(), []string{sh, "-c", "exit 0"}, fsops.RunOptions{})
		if err == nil && res.RC == 0 {
			return sh, true
		}
	}
	return "", false
}

// RunTerminal runs a TTY command in the appliance on the local terminal
// (in, when it is one): raw mode, window size and its changes, and
// everything typed (Ctrl-C included) goes to the guest.
func (img *Image) RunTerminal(ctx context.Context, args fsops.ExecArgs, stdin io.Reader, out io.Writer) (fsops.ExecResult, error) {
	in := stdin
	resize := make(chan fsops.Winsize, 1)
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fd := int(f.Fd())
		old, err := term.MakeRaw(fd)
		if err != nil {
			return fsops.ExecResult{}, fmt.Errorf("terminal raw mode: %w", err)
		}
		defer term.Restore(fd, old)
		if w, h, err := term.GetSize(fd); err == nil {
			args.Cols, args.Rows = uint16(w), uint16(h)
		}
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, syscall.SIGWINCH)
		defer signal.Stop(winch)
		go func() {
			for range winch {
				if w, h, err := term.GetSize(fd); err == nil {
					select {
					case resize <- fsops.Winsize{Rows: uint16(h), Cols: uint16(w)}:
					default:
					}
				}
			}
		}()
		// A dup, so the reader goroutine left blocked after the shell
		// exits reads from a descriptor we can close.
		// Non-blocking, so the poller can interrupt that read; the terminal
		// is put back to blocking for whoever reads it next (the user's shell).
		if dup, err := syscall.Dup(fd); err == nil && syscall.SetNonblock(dup, true) == nil {
			df := os.NewFile(uintptr(dup), "stdin")
			defer func() {
				df.Close()
				_ = syscall.SetNonblock(fd, false)
			}()
			in = df
		}
	}
	if v := os.Getenv("TERM"); v != "" {
		args.Term = v
	}
	res, err := img.Session().ExecTTY(ctx, args, in, out, resize)
	if err != nil && errors.Is(err, fs.ErrNotExist) {
		return res, fmt.Errorf("starting %s: %w", args.Argv[0], err)
	}
	return res, err
}
