package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/imgbake/imgbake/internal/manpage"
	"github.com/imgbake/imgbake/recipes"
	"github.com/imgbake/imgbake/steps"
)

// renderMan formats a man page file with man -l as an 80-column terminal
// would show it, failing on any warning from groff.
func renderMan(t *testing.T, page string) string {
	t.Helper()
	man, err := exec.LookPath("man")
	if err != nil {
		t.Skip("man not installed (Debian: man-db)")
	}
	cmd := exec.Command(man, "--warnings", "-l", page)
	cmd.Env = append(os.Environ(), "MANWIDTH=80", "MANPAGER=cat", "PAGER=cat", "LC_ALL=C.UTF-8")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("man -l %s: %v\n%s", page, err, stderr.String())
	}
	return string(out)
}

// TestManPages generates the pages as `make docs` does and renders them:
// imgbake(1) has every visible command and its options, imgbake-recipe(5)
// every step kind, common field and fact.
func TestManPages(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	if r := imgbake(t, "gen-man", dir); r.code != 0 {
		t.Fatalf("gen-man: %s", r)
	}
	page := renderMan(t, filepath.Join(dir, "imgbake.1"))
	paths, hidden := commandPaths(newApp(Stdio{}).Commands, nil)
	for _, p := range paths {
		name := "imgbake " + strings.Join(p, " ")
		shown, want := strings.Contains(page, "\n   "+name+"\n"), !hidden[strings.Join(p, " ")]
		if shown != want {
			t.Errorf("imgbake(1): subsection %q shown: %v, want %v (hidden commands are left out)", name, shown, want)
		}
	}
	if !regexp.MustCompile(`NAME\n +imgbake +- +customize VM disk images`).MatchString(page) {
		t.Errorf("imgbake(1) has no NAME line")
	}
	for _, want := range []string{"2023-11-14", "-a, --add FILE", "--checksum",
		"EXIT STATUS", "IMGBAKE_CACHE_DIR", "imgbake-recipe(5)"} {
		if !strings.Contains(page, want) {
			t.Errorf("imgbake(1) lacks %q", want)
		}
	}

	recipe := renderMan(t, filepath.Join(dir, "imgbake-recipe.5"))
	var want []string
	for _, k := range steps.All() {
		want = append(want, "\n       "+k.Name+" — ")
	}
	for _, f := range recipes.StepFields() {
		want = append(want, "\n       "+f)
	}
	for _, f := range recipes.FactNames() {
		want = append(want, "\n       "+f)
	}
	for _, w := range append(want, "COMMON FIELDS", "STEP KINDS", "EXAMPLE", "imgbake(1)") {
		if !strings.Contains(recipe, w) {
			t.Errorf("imgbake-recipe(5) lacks %q", strings.TrimSpace(w))
		}
	}
}

// TestRecipeManPageExample: the example recipe of imgbake-recipe(5) is one
// imgbake accepts.
func TestRecipeManPageExample(t *testing.T) {
	dir := t.TempDir()
	rec, err := recipes.Parse(filepath.Join(dir, "example.yaml"), []byte(manpage.RecipeExample()), dir)
	if err != nil {
		t.Fatalf("the example of imgbake-recipe(5) is refused: %v", err)
	}
	if len(rec.Steps) < 5 {
		t.Errorf("the example has %d steps", len(rec.Steps))
	}
}

// TestCompletionScripts: the bash script is valid, registers itself when
// sourced, and completes commands and flags by asking imgbake (this test
// binary standing in for it); the zsh one is valid zsh where zsh exists.
func TestCompletionScripts(t *testing.T) {
	dir := t.TempDir()
	for shell, file := range map[string]string{"bash": "imgbake.bash", "zsh": "_imgbake"} {
		r := imgbake(t, "completion", shell)
		if r.code != 0 || r.stdout == "" {
			t.Fatalf("completion %s: %s", shell, r)
		}
		must(t, os.WriteFile(filepath.Join(dir, file), []byte(r.stdout), 0o644))
	}
	if r := imgbake(t, "completion", "fish"); r.code != ExitUsage {
		t.Errorf("completion fish: %s", r)
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash not installed")
	}
	script := filepath.Join(dir, "imgbake.bash")
	if out, err := exec.Command(bash, "-n", script).CombinedOutput(); err != nil {
		t.Fatalf("bash -n: %v\n%s", err, out)
	}
	out, err := exec.Command(bash, "--norc", "--noprofile", "-c", `source "$1" && complete -p imgbake`, "bash", script).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "-F _imgbake imgbake") {
		t.Fatalf("sourcing the bash script: %v\n%s", err, out)
	}

	// imgbake on PATH is this test binary acting as the command.
	exe, err := os.Executable()
	must(t, err)
	bin := t.TempDir()
	must(t, os.Symlink(exe, filepath.Join(bin, "imgbake")))
	complete := func(words ...string) []string {
		args := append([]string{"--norc", "--noprofile", "-c",
			`source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _imgbake; printf '%s\n' "${COMPREPLY[@]}"`,
			"bash", script}, words...)
		cmd := exec.Command(bash, args...)
		cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "IMGBAKE_TEST_AS_MAIN=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("completing %q: %v\n%s", words, err, out)
		}
		return strings.Fields(string(out))
	}
	if got := complete("imgbake", "sess"); strings.Join(got, " ") != "session" {
		t.Errorf("imgbake sess<TAB> = %q, want session", got)
	}
	if got := complete("imgbake", "session", "st"); strings.Join(got, " ") != "start stop" {
		t.Errorf("imgbake session st<TAB> = %q, want start stop", got)
	}
	if got := complete("imgbake", "run", "--check"); strings.Join(got, " ") != "--checksum" {
		t.Errorf("imgbake run --check<TAB> = %q, want --checksum", got)
	}
	// A command's arguments are files: imgbake offers nothing and bash
	// falls back to file names.
	if got := complete("imgbake", "run", "-a", "d.qcow2", ""); len(got) != 0 {
		t.Errorf("imgbake run -a d.qcow2 <TAB> = %q, want nothing (files)", got)
	}

	if zsh, err := exec.LookPath("zsh"); err == nil {
		if out, err := exec.Command(zsh, "-n", filepath.Join(dir, "_imgbake")).CombinedOutput(); err != nil {
			t.Errorf("zsh -n: %v\n%s", err, out)
		}
	} else {
		t.Log("zsh not installed: the zsh script was not checked")
	}
}
