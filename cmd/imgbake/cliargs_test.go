package main

import (
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestReorderArgs: flags after the positional arguments are moved before
// them, with their values, for the real commands' flags; "--" still ends
// the flags and session exec's command line is never touched.
func TestReorderArgs(t *testing.T) {
	tests := []struct {
		name string
		args string // split at spaces
		want string
	}{
		{"flags after the recipe", "run -a d.qcow2 r.yaml -o out.qcow2", "run -a d.qcow2 -o out.qcow2 r.yaml"},
		{"already in order", "run -a d.qcow2 -o out.qcow2 r.yaml", "run -a d.qcow2 -o out.qcow2 r.yaml"},
		{"bool flag takes no value", "run r.yaml --force -a d.qcow2", "run --force -a d.qcow2 r.yaml"},
		{"value in the flag", "run r.yaml --output=o.qcow2 --force=false", "run --output=o.qcow2 --force=false r.yaml"},
		{"long alias and duration", "run r.yaml --add d.raw --timeout 10m", "run --add d.raw --timeout 10m r.yaml"},
		{"value that looks like a flag", "resize -a d.raw --size -1G", "resize -a d.raw --size -1G"},
		{"a value is never a positional", "edit /etc/x -e s/a/b/ -a d.raw", "edit -e s/a/b/ -a d.raw /etc/x"},
		{"double dash ends the flags", "cat -a d.raw /etc/x -- -weird -l", "cat -a d.raw -- /etc/x -weird -l"},
		{"double dash first", "cat -a d.raw -- -l", "cat -a d.raw -- -l"},
		{"dash is standard input", "session put web - /etc/secret --mode 0600", "session put --mode 0600 web - /etc/secret"},
		{"subcommand", "session stop web --discard", "session stop --discard web"},
		{"subcommand with no positional", "fstab check -a d.raw --json", "fstab check -a d.raw --json"},
		{"short flags grouped", "ls /etc -lR -a d.raw", "ls -lR -a d.raw /etc"},
		{"group ending in a value flag", "ls /etc -la d.raw", "ls -la d.raw /etc"},
		{"several images", "bake r.yaml a.qcow2 b.raw -j 2 --output-dir out", "bake -j 2 --output-dir out r.yaml a.qcow2 b.raw"},
		{"help after the arguments", "run r.yaml --help", "run --help r.yaml"},
		{"unknown flag goes first for the parser to report", "run r.yaml --bogus", "run --bogus r.yaml"},
		{"session exec keeps its command line", "session exec web apt-get -y purge nano", "session exec web apt-get -y purge nano"},
		{"global flag", "--version", "--version"},
		{"not a command", "frobnicate x -y", "frobnicate x -y"},
		{"shell completion is left as typed", "run r.yaml -o --generate-bash-completion", "run r.yaml -o --generate-bash-completion"},
	}
	app := newApp(Stdio{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"imgbake"}, strings.Fields(tt.args)...)
			got, err := reorderArgs(app, slices.Clone(args))
			if err != nil {
				t.Fatalf("Reorder(%q): %v", tt.args, err)
			}
			if want := append([]string{"imgbake"}, strings.Fields(tt.want)...); !slices.Equal(got, want) {
				t.Errorf("Reorder(%q)\n got %q\nwant %q", tt.args, got, want)
			}
		})
	}
	if _, err := reorderArgs(app, []string{"imgbake", "run", "r.yaml", "-o"}); err == nil || err.Error() != "flag needs an argument: -o" {
		t.Errorf("a trailing -o without its value: err = %v, want flag needs an argument: -o", err)
	}
}

// TestFlagsAfterArguments runs commands with flags after their arguments
// and sees the flags take effect: each is refused for what the flags say,
// before anything boots.
func TestFlagsAfterArguments(t *testing.T) {
	disk := makeRawDisk(t)
	recipe := writeRecipe(t, goodRecipe)
	before := sha256File(t, disk)
	tests := []struct {
		args   []string
		stderr string // regexp
	}{
		{[]string{"run", "-a", disk, recipe, "-o", disk}, `already exists`},
		{[]string{"run", recipe, "--in-place", "-o", filepath.Join(t.TempDir(), "x.qcow2"), "-a", disk}, `exclude each other`},
		{[]string{"run", recipe, "-a", disk, "--format", "vmdk"}, `--format "vmdk": use raw or qcow2`},
		{[]string{"run", recipe, "-a", disk, "-o"}, `^imgbake: flag needs an argument: -o\n$`},
		{[]string{"run", recipe, "-a", disk, "--bogus"}, `flag provided but not defined: -bogus`},
		{[]string{"ls", "-a", disk, "--", "-l"}, `"-l": paths inside the image must be absolute`},
	}
	for _, tt := range tests {
		r := imgbake(t, tt.args...)
		if r.code != ExitUsage || !regexp.MustCompile(tt.stderr).MatchString(r.stderr) {
			t.Errorf("%q: want exit %d matching %q\n%s", tt.args, ExitUsage, tt.stderr, r)
		}
	}
	if sha256File(t, disk) != before {
		t.Fatal("disk changed")
	}
}
