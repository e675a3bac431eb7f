// Package clidocs holds the long texts of imgbake's command line: each
// command's description with its examples, keyed by the command's path
// below imgbake ("run", "session put"), the exit codes that end
// `imgbake --help`, and the extra sections of imgbake(1). cmd/imgbake keeps
// the flags; the help and man page renderers (clihelp, manpage) show these.
package clidocs

import (
	"fmt"
	"sort"
	"strings"

	"github.com/imgbake/imgbake/internal/clihelp"
	"github.com/imgbake/imgbake/internal/manpage"
)

// Text is the description of the command at path ("fstab check"). A
// command without one is a programming error, caught by any test that
// builds the command line.
func Text(path string) string {
	for _, texts := range []map[string]string{imageTexts, repairTexts, sessionTexts} {
		if t, ok := texts[path]; ok {
			return t
		}
	}
	panic("clidocs: no description for imgbake " + path)
}

// Paths are the commands that have a description, sorted.
func Paths() []string {
	var paths []string
	for _, texts := range []map[string]string{imageTexts, repairTexts, sessionTexts} {
		for p := range texts {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	return paths
}

// example is the Example section that ends a command's description: the
// help shows its lines as they are, the man page as a code block.
func example(lines ...string) string {
	title := "Example:"
	if len(lines) > 1 {
		title = "Examples:"
	}
	return title + "\n   " + strings.Join(lines, "\n   ")
}

// oneShotExitHelp is appended to the description of the one-shot commands
// that look at or repair an image.
const oneShotExitHelp = "Exit status: 0 success, 1 the operation failed inside the image (a missing file, errors found),\n" +
	"2 bad usage (nothing was touched), 3 image or appliance error. A failed command leaves the image unchanged."

// AppDescription opens `imgbake --help` and imgbake(1).
const AppDescription = "imgbake customizes qcow2 and raw disk images offline. It boots one small appliance VM per " +
	"image (KVM when it works, TCG otherwise) whose agent runs every step of a recipe, so a step costs " +
	"milliseconds instead of a boot; the image changes only if every step succeeded.\n\n" +
	"Options may come before or after a command's arguments; -- ends them. The recipe format is described in " +
	"imgbake-recipe(5), and `imgbake steps` lists the step kinds."

// exitCodes are the exit codes every command uses (bake owns their meaning).
var exitCodes = []manpage.Item{
	{Term: "0", Text: "success"},
	{Term: "1", Text: "a step failed (the image is left unchanged unless --in-place)"},
	{Term: "2", Text: "bad usage or invalid recipe (nothing was touched)"},
	{Term: "3", Text: "image or appliance error (missing/locked/unsupported disk, no OS found, VM failure)"},
	{Term: "130", Text: "interrupted (SIGINT); 143 terminated (SIGTERM)"},
}

// ExitCodesHelp ends `imgbake --help`.
func ExitCodesHelp() string {
	var b strings.Builder
	b.WriteString("\nEXIT CODES:\n")
	for _, c := range exitCodes {
		lines := clihelp.Wrap(c.Text, clihelp.Width-8)
		fmt.Fprintf(&b, "   %-4s %s\n", c.Term, strings.Join(lines, "\n        "))
	}
	return b.String()
}

// ManSections end imgbake(1).
func ManSections() []manpage.Section {
	return []manpage.Section{
		{Title: "Exit status", Items: exitCodes,
			Text: "bake exits with the most serious code of its images; session exec with the command's (255: the session failed)."},
		{Title: "Environment", Items: []manpage.Item{
			{Term: "IMGBAKE_CACHE_DIR", Text: "the cache directory: the appliance (appliance/), the warm-start snapshots and the step-layer cache (layers/); default ~/.cache/imgbake"},
			{Term: "IMGBAKE_KERNEL", Text: "the appliance kernel, as --kernel; default the newest /boot/vmlinuz-*-cloud-amd64, else the newest /boot/vmlinuz-*"},
			{Term: "IMGBAKE_KERNEL_MODULES", Text: "the kernel's module tree when it is not /lib/modules/VERSION"},
			{Term: "IMGBAKE_ACCEL", Text: "kvm or tcg: skip the check of whether KVM works"},
			{Term: "IMGBAKE_COLD", Text: "1: boot the appliance instead of restoring the saved one, as --cold"},
			{Term: "IMGBAKE_DATA_DISK", Text: "0: send bulk copies through the agent channel instead of a hot-plugged disk"},
			{Term: "XDG_RUNTIME_DIR, TMPDIR", Text: "where session directories live: $XDG_RUNTIME_DIR/imgbake/sessions, else $TMPDIR/imgbake-UID/sessions"},
			{Term: "VISUAL, EDITOR", Text: "the editor of imgbake edit"},
		}},
		{Title: "Files", Items: []manpage.Item{
			{Term: "~/.cache/imgbake/appliance", Text: "the appliance (host kernel plus imgbake's initramfs), built on first use and rebuilt when the kernel, its modules or imgbake change"},
			{Term: "IMAGE.sha256", Text: "written beside an output image by --checksum, in sha256sum -c format"},
			{Term: "/var/lib/imgbake/state.json", Text: "inside the image: the recipes applied to it, for run-once"},
			{Term: "PREFIX/share/imgbake/ansible_collections", Text: "the Ansible collection imgbake.disk (connection and callback plugins); point collections_path at PREFIX/share/imgbake"},
		}},
		{Title: "See also", Text: "imgbake-recipe(5), qemu-img(1), virt-customize(1)"},
	}
}
