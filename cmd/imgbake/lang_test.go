package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/imgbake/imgbake/testimages"
)

func TestCheckCommand(t *testing.T) {
	good := writeRecipe(t, "vars: {who: ops}\nsteps:\n  - run: echo {{ .vars.who }}\n    when: os.family == \"debian\"\n")
	if r := imgbake(t, "check", good); r.code != 0 || !strings.Contains(r.stdout, "ok (1 steps, 1 vars)") {
		t.Fatalf("%s", r)
	}
	bad := writeRecipe(t, "steps:\n  - run: echo {{ .vars.nope }}\n  - write: {path: rel, content: x}\n    when: os.id = 1\n")
	r := imgbake(t, "check", bad)
	if r.code != ExitUsage {
		t.Fatalf("exit %d, want %d\n%s", r.code, ExitUsage, r)
	}
	for _, want := range []string{"recipe.yaml:2:10: run: template: no value for .vars.nope", "recipe.yaml:3:19: write.path:", "recipe.yaml:4:17: when:", "invalid recipe (3 problems)"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("check output lacks %q:\n%s", want, r.stderr)
		}
	}
	// --var fills a missing variable.
	if r := imgbake(t, "check", "--var", "nope=x", writeRecipe(t, "steps:\n  - run: echo {{ .vars.nope }}\n")); r.code != 0 {
		t.Errorf("--var should satisfy the template: %s", r)
	}
	if r := imgbake(t, "check", "--var", "novalue", good); r.code != ExitUsage {
		t.Errorf("--var without = should be a usage error: %s", r)
	}
}

// TestLanguageOnImage: facts from the real image drive when, templates,
// creates and changed_when; --json reports every event.
func TestLanguageOnImage(t *testing.T) {
	vmTests(t)
	disk := testimages.Fresh(t, testimages.NoPart)
	recipe := writeRecipe(t, `name: lang
vars:
  admin: ops
steps:
  - write: {path: /etc/family, content: "{{ .os.family }} {{ .os.id }} {{ .os.version_id }} {{ .vars.admin }}\n"}
    when: os.family == "debian" and os.version_id >= 12
  - write: {path: /etc/rhel-only, content: x}
    when: os.family == "rhel"
  - template: {src: site.tmpl, dest: /etc/site.conf, mode: "0640"}
  - run: echo made > /etc/made
    creates: /etc/made
  - run: echo made again > /etc/made
    creates: /etc/made
  - name: a command that reports no change
    run: "true"
    changed_when: false
  - run: echo found
    changed_when: '"found" in stdout'
`)
	must(t, os.WriteFile(filepath.Join(filepath.Dir(recipe), "site.tmpl"),
		[]byte("host={{ .hostname }}\npm={{ .os.package_manager }}\narch={{ .os.arch }}\n"), 0o644))
	r := imgbake(t, "run", "--json", "--var", "admin=root", "-a", disk, recipe)
	if r.code != 0 {
		t.Fatalf("%s", r)
	}
	var events []map[string]any
	sc := bufio.NewScanner(strings.NewReader(r.stdout))
	for sc.Scan() {
		var e map[string]any
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("--json line is not JSON: %q: %v", sc.Text(), err)
		}
		events = append(events, e)
	}
	status := map[float64]string{}
	for _, e := range events {
		if e["event"] == "step_result" {
			status[e["index"].(float64)] = e["status"].(string)
		}
	}
	want := map[float64]string{1: "changed", 2: "skipped", 3: "changed", 4: "changed", 5: "skipped", 6: "ok", 7: "changed"}
	for i, s := range want {
		if status[i] != s {
			t.Errorf("step %v: status %q, want %q (events: %v)", i, status[i], s, status)
		}
	}
	if len(events) < 2 || events[0]["event"] != "run_start" || events[len(events)-1]["event"] != "run_end" || events[len(events)-1]["status"] != "ok" {
		t.Errorf("events should start with run_start and end with run_end ok: %v", events)
	}
	files, err := testimages.ReadFiles(t, disk, "raw", 0, "/etc/family", "/etc/rhel-only", "/etc/site.conf", "/etc/made")
	must(t, err)
	if got := string(files["/etc/family"]); got != "debian debian 12 root\n" {
		t.Errorf("/etc/family = %q", got)
	}
	if _, ok := files["/etc/rhel-only"]; ok {
		t.Error("a step whose when was false ran")
	}
	if got := string(files["/etc/site.conf"]); got != "host=testhost\npm=apt\narch=x86_64\n" {
		t.Errorf("/etc/site.conf = %q", got)
	}
	if got := string(files["/etc/made"]); got != "made\n" {
		t.Errorf("creates did not skip the second command: /etc/made = %q", got)
	}
}

// TestInstallPackage installs a small package over the appliance's
// network, from the tests' local APT repository (see testAptRepo), and
// proves the image's resolv.conf is restored and a second install is a
// no-op.
func TestInstallPackage(t *testing.T) {
	vmTests(t)
	repo := testAptRepo(t)
	disk := testimages.Fresh(t, testimages.NoPart)
	before, err := testimages.ReadFile(t, disk, "raw", 0, "/etc/resolv.conf")
	must(t, err)
	recipe := writeRecipe(t, "steps:\n"+localAptStep(repo)+"  - install: [hello]\n  - run: hello > /root/hello.out\n  - install: hello\n")
	r := imgbake(t, "run", "-a", disk, recipe)
	if r.code != 0 {
		t.Fatalf("%s", r)
	}
	if !regexp.MustCompile(`(?m)^\[4/4\] install: hello\s+ok\s.*already installed`).MatchString(r.stdout) {
		t.Errorf("the second install should be ok (already installed):\n%s", r.stdout)
	}
	if !repo.Requested(debPath(helloFixture)) {
		t.Errorf("hello was not fetched from the local repository; it served %v", repo.Requests())
	}
	files, err := testimages.ReadFiles(t, disk, "raw", 0, "/root/hello.out", "/etc/resolv.conf", "/usr/sbin/policy-rc.d", "/etc/.resolv.conf.imgbake-saved")
	must(t, err)
	if string(files["/root/hello.out"]) != "Hello, world!\n" {
		t.Errorf("hello did not run: %q", files["/root/hello.out"])
	}
	if string(files["/etc/resolv.conf"]) != string(before) {
		t.Errorf("resolv.conf not restored: %q, was %q", files["/etc/resolv.conf"], before)
	}
	for _, p := range []string{"/usr/sbin/policy-rc.d", "/etc/.resolv.conf.imgbake-saved"} {
		if _, ok := files[p]; ok {
			t.Errorf("%s left in the image", p)
		}
	}
	// --no-network: the package cannot be fetched, although the repository
	// is there, and the step says so.
	served := len(repo.Requests())
	disk2 := testimages.Fresh(t, testimages.NoPart)
	r = imgbake(t, "run", "--no-network", "-a", disk2, writeRecipe(t, "steps:\n"+localAptStep(repo)+"  - install: [hello]\n"))
	if r.code != ExitStepFailed {
		t.Errorf("install with --no-network should fail:\n%s", r)
	}
	if got := repo.Requests(); len(got) != served {
		t.Errorf("with --no-network the repository was reached: %v", got[served:])
	}
}
