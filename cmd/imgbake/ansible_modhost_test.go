package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/imgbake/imgbake/testimages"
)

// taskResults runs playbook with the task_results test callback and
// returns each task's result, by task name, with what differs
// from run to run by nature masked: timestamps, the disk's path and the
// payload's temporary directory.
func taskResults(t *testing.T, playbook string, extra ...string) (map[string]string, []string, string) {
	t.Helper()
	tmp, base := sessionTest(t)
	resFile := filepath.Join(t.TempDir(), "results.jsonl")
	env := append(ansibleEnv(t, tmp), "IMGBAKE_TEST_RESULTS="+resFile)
	disk := testimages.Fresh(t, testimages.Python)
	out, code, _ := runPlaybook(t, env, playbook, append([]string{"-e", "disk=" + disk}, extra...)...)
	if code != 0 {
		t.Fatalf("ansible-playbook exited %d:\n%s", code, out)
	}
	b, err := os.ReadFile(resFile)
	must(t, err)
	var lines []struct {
		Task   string
		Result json.RawMessage
	}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var e struct {
			Task   string
			Result json.RawMessage
		}
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("results line %q: %v", l, err)
		}
		lines = append(lines, e)
	}
	// What differs between any two runs: times, the controller's random
	// temporary names, the inode and generation of a file written twice.
	volatile := regexp.MustCompile(`"(start|end|delta|_original_basename)": "[^"]*"|"(atime|mtime|ctime|inode|version)": ("[^"]*"|[0-9.]+)`)
	tmpdir := regexp.MustCompile(`ansible-tmp-[0-9.]+-[0-9]+-[0-9]+`)
	payload := regexp.MustCompile(`ansible_[a-z_]+_payload_[A-Za-z0-9_]+`)
	res := map[string]string{}
	for _, e := range lines {
		r := strings.ReplaceAll(string(e.Result), disk, "DISK")
		r = volatile.ReplaceAllString(r, `"$1$2": "X"`)
		r = tmpdir.ReplaceAllString(r, "TMP")
		res[e.Task] = payload.ReplaceAllString(r, "PAYLOAD")
	}
	return res, sessionLogs(t, base), disk
}

// TestAnsibleModuleHostSameResults: one play (a change, no change, check
// mode, a failing command, a module writing to stderr, one raising, one
// killed by a signal, one exiting without JSON, raw) run with the module
// host and without it: every task's result is the same, byte for byte.
func TestAnsibleModuleHostSameResults(t *testing.T) {
	with, logs, _ := taskResults(t, "compare.yml", "-e", "imgbake_module_host=true")
	if len(logs) != 1 {
		t.Fatalf("session logs %v", logs)
	}
	if starts, served := moduleHostLogged(t, logs[0]); starts != 1 || served < 10 {
		t.Errorf("module host: %d starts, %d modules served; want 1 and every module", starts, served)
	}
	without, logs2, _ := taskResults(t, "compare.yml", "-e", "imgbake_module_host=false")
	if starts, _ := moduleHostLogged(t, logs2[0]); starts != 0 {
		t.Errorf("the module host started with ansible_imgbake_module_host=false")
	}
	if len(with) < 12 {
		t.Fatalf("only %d task results: %v", len(with), with)
	}
	for name, w := range with {
		if name == "add the disk image to the inventory" {
			continue // it sets the variable that differs
		}
		if without[name] != w {
			t.Errorf("task %q:\nwith the module host    %s\nwithout the module host %s", name, w, without[name])
		}
	}
	for name, rc := range map[string]string{"a module raising": `"rc": 1`, "a module killed by a signal": `"rc": 139`,
		"a failing command": `"rc": 3`, "a module exiting without JSON": `"rc": 5`} {
		if !strings.Contains(with[name], rc) {
			t.Errorf("task %q did not fail with %s: %s", name, rc, with[name])
		}
	}
	if !strings.Contains(with["a module writing to stderr"], "crashy: a warning on stderr") && !strings.Contains(with["a module writing to stderr"], `"changed": true`) {
		t.Errorf("the stderr task: %s", with["a module writing to stderr"])
	}
}

// TestAnsibleModuleHostFailures: with the module host, a module that hangs
// is killed at the task's timeout, one that leaves a daemon has it killed
// when the task ends, one that crashes fails alone; the play goes on, the
// one module host serves every task and the session stops and commits.
func TestAnsibleModuleHostFailures(t *testing.T) {
	tmp, base := sessionTest(t)
	env := ansibleEnv(t, tmp)
	disk := testimages.Fresh(t, testimages.Python)
	out, code, took := runPlaybook(t, env, "modhost.yml", "-e", "disk="+disk)
	t.Logf("the play: exit %d in %s", code, took)
	if code != 0 || !strings.Contains(out, "changes committed into the image") {
		t.Fatalf("ansible-playbook exited %d:\n%s", code, out)
	}
	for _, want := range []string{"action failed to execute in the expected time frame (20)", "MODULE FAILURE"} {
		if !strings.Contains(out, want) {
			t.Errorf("the output lacks %q:\n%s", want, out)
		}
	}
	files, err := testimages.ReadFiles(t, disk, "raw", 0, "/etc/after-failures")
	if err != nil || string(files["/etc/after-failures"]) != "left 0\n" {
		t.Errorf("/etc/after-failures = %q, %v; want nothing left running", files["/etc/after-failures"], err)
	}
	logs := sessionLogs(t, base)
	if len(logs) != 1 {
		t.Fatalf("session logs %v", logs)
	}
	if starts, served := moduleHostLogged(t, logs[0]); starts != 1 || served < 5 {
		b, _ := os.ReadFile(logs[0])
		t.Errorf("module host: %d starts, %d served; want 1 start for every task\n%s", starts, served, b)
	}
}
