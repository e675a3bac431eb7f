package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imgbake/imgbake/internal/vmtest"
)

// zshTypeTab drives an interactive zsh on a pseudo-terminal (zsh/zpty):
// it runs $1 (the completion setup), types $2 and TAB, and reads the
// screen until it matches the pattern $3, then prints what it read.
const zshTypeTab = `zmodload zsh/zpty || exit 2
zpty z zsh -f -i
zpty -w z "PS1='> '; $1; print RE''ADY"
zpty -r -m z out '*READY*' || exit 3
zpty -w -n z "$2"$'\t'
zpty -r -m z out "$3" || exit 4
print -r -- "$out"
zpty -d z`

// TestZshCompletion loads the generated zsh completion the two ways zsh
// users get it: sourced after compinit, and autoloaded by compinit from a
// directory in $fpath (as the package installs it, in
// /usr/share/zsh/vendor-completions); both register _imgbake for imgbake.
// Then a real interactive zsh completes with it, asking imgbake (this test
// binary standing in for it) what comes next.
func TestZshCompletion(t *testing.T) {
	zsh := vmtest.LookPath(t, "zsh", "zsh")
	r := imgbake(t, "completion", "zsh")
	if r.code != 0 || r.stdout == "" {
		t.Fatalf("completion zsh: %s", r)
	}
	fpathDir := t.TempDir()
	script := filepath.Join(fpathDir, "_imgbake")
	must(t, os.WriteFile(script, []byte(r.stdout), 0o644))
	if out, err := exec.Command(zsh, "-n", script).CombinedOutput(); err != nil {
		t.Fatalf("zsh -n %s: %v\n%s", script, err, out)
	}

	exe, err := os.Executable()
	must(t, err)
	bin := t.TempDir()
	must(t, os.Symlink(exe, filepath.Join(bin, "imgbake")))
	home := t.TempDir() // compinit -D writes no dump, but keep zsh out of the real HOME
	runZsh := func(args ...string) (string, error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, zsh, append([]string{"-f"}, args...)...)
		cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "IMGBAKE_TEST_AS_MAIN=1",
			"HOME="+home, "ZDOTDIR="+home, "TERM=xterm", "LC_ALL=C.UTF-8")
		cmd.WaitDelay = 5 * time.Second
		out, err := cmd.CombinedOutput()
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return string(out), err
	}

	sourced := `autoload -U compinit && compinit -u -D && source "$1"`
	autoloaded := `fpath=("$1" $fpath) && autoload -U compinit && compinit -u -D`
	for name, setup := range map[string]struct{ setup, arg string }{
		"sourced":    {sourced, script},
		"autoloaded": {autoloaded, fpathDir},
	} {
		out, err := runZsh("-c", setup.setup+` && print -r -- "${_comps[imgbake]}" && whence -w _imgbake`, "zsh", setup.arg)
		if err != nil || strings.TrimSpace(out) != "_imgbake\n_imgbake: function" {
			t.Errorf("%s: completion function for imgbake: %v\n%s", name, err, out)
		}
	}

	// Typing on a terminal: zsh lists the matching subcommands, and
	// completes a flag's name in the line.
	setup := `fpath=(` + fpathDir + ` $fpath); autoload -U compinit; compinit -u -D`
	for _, tc := range []struct{ line, screen string }{
		{"imgbake session st", "*start  stop*"},
		{"imgbake run --check", "*imgbake run --checksum*"},
	} {
		if out, err := runZsh("-c", zshTypeTab, "zsh", setup, tc.line, tc.screen); err != nil {
			t.Errorf("zsh: %s<TAB> does not show %s: %v\n%q", tc.line, tc.screen, err, out)
		}
	}
}
