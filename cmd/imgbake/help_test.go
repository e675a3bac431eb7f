package main

import (
	"encoding/json"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/urfave/cli/v2"

	"github.com/imgbake/imgbake/bake"
	"github.com/imgbake/imgbake/internal/clidocs"
)

// commandPaths lists every command and subcommand of the CLI by path
// ("session start"), with whether it is hidden.
func commandPaths(cmds []*cli.Command, parent []string) (paths [][]string, hidden map[string]bool) {
	hidden = map[string]bool{}
	var walk func([]*cli.Command, []string, bool)
	walk = func(cmds []*cli.Command, parent []string, parentHidden bool) {
		for _, c := range cmds {
			p := append(append([]string{}, parent...), c.Name)
			paths = append(paths, p)
			hidden[strings.Join(p, " ")] = parentHidden || c.Hidden
			walk(c.Subcommands, p, parentHidden || c.Hidden)
		}
	}
	walk(cmds, parent, false)
	return paths, hidden
}

// TestHelpFitsEightyColumns renders the --help of the app and of every
// command: no line is wider than 80 columns, and every visible command has
// an Example section with lines that run it.
func TestHelpFitsEightyColumns(t *testing.T) {
	paths, hidden := commandPaths(newApp(Stdio{}).Commands, nil)
	if len(paths) < 30 {
		t.Fatalf("found only %d commands", len(paths))
	}
	for _, p := range append([][]string{{}}, paths...) {
		name := strings.Join(p, " ")
		r := imgbake(t, append(p, "--help")...)
		if r.code != 0 || r.stderr != "" {
			t.Errorf("imgbake %s --help: %s", name, r)
			continue
		}
		for i, line := range strings.Split(r.stdout, "\n") {
			if n := utf8.RuneCountInString(line); n > 80 {
				t.Errorf("imgbake %s --help: line %d is %d columns: %q", name, i+1, n, line)
			}
		}
		if len(p) == 0 || hidden[name] {
			continue
		}
		_, ex, ok := strings.Cut(r.stdout, "\n   Example")
		if !ok || !strings.Contains(ex, "\n      imgbake "+name+" ") {
			t.Errorf("imgbake %s --help has no Example section running it:\n%s", name, r.stdout)
		}
	}
}

// TestEveryDescriptionUsed: each text of clidocs is the description of the
// command at its path, so none is left over or given to the wrong command.
func TestEveryDescriptionUsed(t *testing.T) {
	described := map[string]string{}
	var walk func([]*cli.Command, string)
	walk = func(cmds []*cli.Command, parent string) {
		for _, c := range cmds {
			p := strings.TrimPrefix(parent+" "+c.Name, " ")
			if c.Description != "" {
				described[p] = c.Description
			}
			walk(c.Subcommands, p)
		}
	}
	walk(newApp(Stdio{}).Commands, "")
	for _, p := range clidocs.Paths() {
		if described[p] != clidocs.Text(p) {
			t.Errorf("clidocs has a description for %q that imgbake %s does not show", p, p)
		}
	}
	if len(described) != len(clidocs.Paths()) {
		t.Errorf("%d commands have a description, clidocs holds %d", len(described), len(clidocs.Paths()))
	}
}

// TestVersionJSON: version --json names the build and what the host
// offers; a missing kernel is reported, not an error.
func TestVersionJSON(t *testing.T) {
	t.Setenv("IMGBAKE_ACCEL", "tcg") // no KVM probe: it would boot a kernel
	t.Setenv("IMGBAKE_KERNEL", "/nonexistent/vmlinuz-1")
	r := imgbake(t, "version", "--json")
	if r.code != 0 {
		t.Fatalf("%s", r)
	}
	var got struct {
		Version, Commit, GoVersion, Platform string
		QEMU, Kernel                         bake.HostTool
		KVM                                  bake.HostKVM
	}
	// The JSON names are snake_case; each is read into its field above.
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(r.stdout), &raw); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, r.stdout)
	}
	for key, dst := range map[string]any{"version": &got.Version, "commit": &got.Commit, "go_version": &got.GoVersion,
		"platform": &got.Platform, "qemu": &got.QEMU, "kernel": &got.Kernel, "kvm": &got.KVM} {
		b, ok := raw[key]
		if !ok {
			t.Errorf("version --json lacks %q:\n%s", key, r.stdout)
			continue
		}
		if err := json.Unmarshal(b, dst); err != nil {
			t.Errorf("%s: %v", key, err)
		}
	}
	if got.Version != bake.Version || got.GoVersion != runtime.Version() || got.Platform != runtime.GOOS+"/"+runtime.GOARCH {
		t.Errorf("build fields: %+v", got)
	}
	_, lookErr := exec.LookPath("qemu-system-x86_64")
	if got.QEMU.Found != (lookErr == nil) || (got.QEMU.Found && !strings.Contains(got.QEMU.Version, "QEMU")) {
		t.Errorf("qemu: %+v, but LookPath says %v", got.QEMU, lookErr)
	}
	if got.Kernel.Found || !strings.Contains(got.Kernel.Error, "/nonexistent/vmlinuz-1 does not exist") {
		t.Errorf("kernel: %+v, want not found naming /nonexistent/vmlinuz-1", got.Kernel)
	}
	if got.KVM.Usable || got.KVM.Accel != "tcg" || !strings.Contains(got.KVM.Note, "IMGBAKE_ACCEL") {
		t.Errorf("kvm: %+v, want tcg as IMGBAKE_ACCEL says", got.KVM)
	}
	text := imgbake(t, "version")
	if text.code != 0 || !strings.HasPrefix(text.stdout, "imgbake "+bake.Version+" (") || !strings.Contains(text.stdout, "kernel:  not found") {
		t.Errorf("version: %s", text)
	}
}
