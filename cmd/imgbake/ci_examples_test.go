package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
	"go.yaml.in/yaml/v3"
)

// imgbakeCommands finds the imgbake command lines in a shell script: each
// command of a line (split at ; && || | and $( ) that starts with imgbake.
func imgbakeCommands(script string) [][]string {
	script = strings.ReplaceAll(script, "\\\n", " ")
	var cmds [][]string
	for _, line := range strings.Split(script, "\n") {
		line = strings.NewReplacer("$(", ";", ")", ";", "&&", ";", "||", ";", "|", ";").Replace(line)
		for _, seg := range strings.Split(line, ";") {
			if f := strings.Fields(seg); len(f) > 0 && f[0] == "imgbake" {
				cmds = append(cmds, f)
			}
		}
	}
	return cmds
}

// checkImgbakeCommand parses an example's command line with the real
// command's flags (as urfave/cli would, after moving flags before the
// arguments) and checks that the README shows that command and every flag
// it uses.
func checkImgbakeCommand(t *testing.T, where string, argv []string, readme string) {
	t.Helper()
	app := newApp(Stdio{})
	args, err := reorderArgs(app, argv)
	if err != nil {
		t.Errorf("%s: %q: %v", where, argv, err)
		return
	}
	cmds, path, i := app.Commands, []string{}, 1
	var cmd *cli.Command
	for ; i < len(args); i++ {
		j := slices.IndexFunc(cmds, func(c *cli.Command) bool { return c.HasName(args[i]) })
		if j < 0 {
			break
		}
		cmd, cmds, path = cmds[j], cmds[j].Subcommands, append(path, cmds[j].Name)
	}
	if cmd == nil || len(cmd.Subcommands) > 0 {
		t.Errorf("%s: %q does not name an imgbake command", where, argv)
		return
	}
	set := flag.NewFlagSet(strings.Join(path, " "), flag.ContinueOnError)
	set.SetOutput(io.Discard)
	for _, f := range cmd.Flags {
		must(t, f.Apply(set))
	}
	if err := set.Parse(args[i:]); err != nil {
		t.Errorf("%s: %q: %v", where, argv, err)
		return
	}
	name := "imgbake " + strings.Join(path, " ")
	if !strings.Contains(readme, name) {
		t.Errorf("%s runs %s, which the README does not show", where, name)
	}
	set.Visit(func(f *flag.Flag) {
		spelled := "--" + f.Name
		if len(f.Name) == 1 {
			spelled = "-" + f.Name
		}
		if !strings.Contains(readme, spelled+" ") && !strings.Contains(readme, spelled+"`") {
			t.Errorf("%s uses %s %s, which the README does not show", where, name, spelled)
		}
	})
}

func readExample(t *testing.T, name string, v any) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "examples/ci", name))
	must(t, err)
	if v != nil {
		if err := yaml.Unmarshal(b, v); err != nil {
			t.Fatalf("examples/ci/%s: %v", name, err)
		}
	}
	return string(b)
}

// checkBakeScript checks what the examples' bake scripts have in common:
// imgbake comes from the package, every imgbake command is valid and
// documented, the image is written with --checksum and the checksum
// verified.
func checkBakeScript(t *testing.T, where, script, readme string) {
	t.Helper()
	cmds := imgbakeCommands(script)
	for _, c := range cmds {
		checkImgbakeCommand(t, where, c, readme)
	}
	run := slices.IndexFunc(cmds, func(c []string) bool {
		return len(c) > 1 && c[1] == "run" && slices.Contains(c, "--checksum") && slices.Contains(c, "golden.qcow2")
	})
	if run < 0 {
		t.Errorf("%s: no imgbake run -o golden.qcow2 --checksum in:\n%s", where, script)
	}
	if !strings.Contains(script, "sha256sum -c golden.qcow2.sha256") {
		t.Errorf("%s does not verify the image's checksum", where)
	}
}

// TestCIExamples: the GitHub Actions workflow and the GitLab CI jobs parse
// as YAML and have the structure they need (a Debian 12 job that installs
// the package built from source, caches the appliance directory, bakes with
// a checksum and uploads the image with it), and the Packer template hands
// its disk to imgbake in a shell-local post-processor; every imgbake
// command they run is one imgbake accepts and the README shows.
func TestCIExamples(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "README.md"))
	must(t, err)
	readme := string(b)

	t.Run("github", func(t *testing.T) {
		var wf struct {
			Name string
			On   map[string]any
			Env  map[string]string
			Jobs map[string]struct {
				RunsOn    string `yaml:"runs-on"`
				Container string
				Steps     []struct {
					Name, Uses, Run, ID string
					With                map[string]string
				}
			}
		}
		readExample(t, "github-actions.yml", &wf)
		if wf.Name == "" || wf.On == nil || len(wf.Jobs) != 1 {
			t.Fatalf("want a named workflow with triggers and one job: %+v", wf)
		}
		job := wf.Jobs["bake"]
		if !strings.HasPrefix(job.RunsOn, "ubuntu-") || job.Container != "debian:12" {
			t.Errorf("job bake: runs-on %q container %q, want a hosted ubuntu runner and debian:12", job.RunsOn, job.Container)
		}
		var script strings.Builder
		uses := map[string]map[string]string{}
		for _, s := range job.Steps {
			if (s.Uses == "") == (s.Run == "") {
				t.Errorf("step %q: want exactly one of uses and run", s.Name)
			}
			if s.Uses != "" {
				uses[strings.Split(s.Uses, "@")[0]] = s.With
			}
			script.WriteString(s.Run + "\n")
		}
		for _, action := range []string{"actions/checkout", "actions/setup-go", "actions/cache", "actions/upload-artifact"} {
			if _, ok := uses[action]; !ok {
				t.Errorf("no step uses %s", action)
			}
		}
		if wf.Env["IMGBAKE_CACHE_DIR"] == "" || uses["actions/cache"]["path"] != "${{ env.IMGBAKE_CACHE_DIR }}/appliance" {
			t.Errorf("the cache must hold $IMGBAKE_CACHE_DIR/appliance: env %v, with %v", wf.Env, uses["actions/cache"])
		}
		if up := strings.Fields(uses["actions/upload-artifact"]["path"]); !slices.Contains(up, "golden.qcow2") || !slices.Contains(up, "golden.qcow2.sha256") {
			t.Errorf("upload-artifact uploads %q, want golden.qcow2 and golden.qcow2.sha256", up)
		}
		for _, want := range []string{"make -C imgbake deb", "apt-get install -y ./imgbake_*.deb"} {
			if !strings.Contains(script.String(), want) {
				t.Errorf("the workflow does not run %q", want)
			}
		}
		checkBakeScript(t, "github-actions.yml", script.String(), readme)
	})

	t.Run("gitlab", func(t *testing.T) {
		var doc map[string]any
		readExample(t, "gitlab-ci.yml", &doc)
		type job struct {
			Stage  string
			Image  string
			Needs  []string
			Script []string
			Cache  struct {
				Key   string
				Paths []string
			}
			Artifacts struct{ Paths []string }
		}
		var ci struct {
			Stages    []string
			Variables map[string]string
			Package   job `yaml:"imgbake-package"`
			Bake      job `yaml:"bake"`
		}
		readExample(t, "gitlab-ci.yml", &ci)
		for key := range doc {
			if !slices.Contains([]string{"stages", "variables", "imgbake-package", "bake"}, key) {
				t.Errorf("unexpected top-level key %q", key)
			}
		}
		for name, j := range map[string]job{"imgbake-package": ci.Package, "bake": ci.Bake} {
			if !slices.Contains(ci.Stages, j.Stage) || j.Image != "debian:12" || len(j.Script) == 0 {
				t.Errorf("job %s: stage %q (stages %v), image %q, %d script lines", name, j.Stage, ci.Stages, j.Image, len(j.Script))
			}
		}
		if !slices.Contains(ci.Package.Artifacts.Paths, "imgbake_*.deb") || !slices.Contains(ci.Bake.Needs, "imgbake-package") {
			t.Errorf("bake must get the package from imgbake-package: artifacts %v, needs %v", ci.Package.Artifacts.Paths, ci.Bake.Needs)
		}
		if ci.Variables["IMGBAKE_CACHE_DIR"] != "$CI_PROJECT_DIR/.imgbake-cache" || !slices.Contains(ci.Bake.Cache.Paths, ".imgbake-cache/appliance") {
			t.Errorf("the cache must hold $IMGBAKE_CACHE_DIR/appliance: %v, %+v", ci.Variables, ci.Bake.Cache)
		}
		if !slices.Contains(ci.Bake.Artifacts.Paths, "golden.qcow2") || !slices.Contains(ci.Bake.Artifacts.Paths, "golden.qcow2.sha256") {
			t.Errorf("bake's artifacts %v, want golden.qcow2 and golden.qcow2.sha256", ci.Bake.Artifacts.Paths)
		}
		pkg := strings.Join(ci.Package.Script, "\n")
		if !strings.Contains(pkg, "make -C imgbake deb") || imgbakeCommands(pkg) != nil {
			t.Errorf("imgbake-package must build the package from source:\n%s", pkg)
		}
		bake := strings.Join(ci.Bake.Script, "\n")
		if !strings.Contains(bake, "apt-get install -y --no-install-recommends ca-certificates curl ./imgbake_*.deb") {
			t.Errorf("bake does not install the package:\n%s", bake)
		}
		checkBakeScript(t, "gitlab-ci.yml", bake, readme)
	})

	t.Run("packer", func(t *testing.T) {
		hcl := readExample(t, "packer/debian.pkr.hcl", nil)
		if !regexp.MustCompile(`(?m)^source "qemu" "debian" \{`).MatchString(hcl) ||
			!regexp.MustCompile(`sources\s*=\s*\["source\.qemu\.debian"\]`).MatchString(hcl) {
			t.Error("no qemu source used by the build")
		}
		m := regexp.MustCompile(`(?s)post-processor "shell-local" \{\s*inline = \[(.*?)\]`).FindStringSubmatch(hcl)
		if m == nil {
			t.Fatal("no shell-local post-processor with inline commands")
		}
		var script []string
		for _, s := range regexp.MustCompile(`"((?:[^"\\]|\\.)*)"`).FindAllStringSubmatch(m[1], -1) {
			script = append(script, s[1])
		}
		lines := strings.Join(script, "\n")
		if !strings.Contains(lines, "-a output-debian/debian.qcow2") || !strings.Contains(hcl, `output_directory = "output-debian"`) ||
			!strings.Contains(hcl, `vm_name          = "debian.qcow2"`) {
			t.Errorf("the post-processor must bake the disk the builder wrote:\n%s", lines)
		}
		checkBakeScript(t, "packer/debian.pkr.hcl", lines, readme)
	})

	t.Run("recipe", func(t *testing.T) {
		if r := imgbake(t, "check", filepath.Join(repoRoot(t), "examples/ci/recipe.yaml")); r.code != 0 {
			t.Errorf("imgbake check examples/ci/recipe.yaml: %s", r)
		}
	})
}
