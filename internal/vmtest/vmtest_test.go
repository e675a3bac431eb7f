package vmtest

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// fakeTB records what the gate did to a test.
type fakeTB struct {
	skipped, failed bool
	msg             string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Skip(args ...any) {
	f.skipped = true
	f.msg = fmt.Sprint(args...)
}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed = true
	f.msg = fmt.Sprintf(format, args...)
}

const noSuchTool = "imgbake-vmtest-no-such-tool"

func TestGateAndMissing(t *testing.T) {
	for _, tc := range []struct {
		env       string // IMGBAKE_VM_TESTS
		gateSkips bool
		missFails bool // false: Missing skips
		lookFails bool
		lookSkips bool
	}{
		{env: "", gateSkips: true, lookSkips: true},
		{env: "0", gateSkips: true, lookSkips: true},
		{env: "yes", gateSkips: true, lookSkips: true},
		{env: "1", missFails: true, lookFails: true},
	} {
		t.Run("IMGBAKE_VM_TESTS="+tc.env, func(t *testing.T) {
			t.Setenv(Env, tc.env)

			var g fakeTB
			Gate(&g)
			if g.skipped != tc.gateSkips || g.failed {
				t.Errorf("Gate: skipped %v failed %v, want skipped %v", g.skipped, g.failed, tc.gateSkips)
			}
			if tc.gateSkips && !strings.Contains(g.msg, "IMGBAKE_VM_TESTS=1") {
				t.Errorf("Gate's skip does not say how to run the test: %q", g.msg)
			}

			var m fakeTB
			Missing(&m, "qemu-system-x86_64 not found (%s)", InstallDeps)
			if m.failed != tc.missFails || m.skipped == tc.missFails {
				t.Errorf("Missing: failed %v skipped %v, want failed %v", m.failed, m.skipped, tc.missFails)
			}
			for _, want := range []string{"missing prerequisite", "qemu-system-x86_64 not found", "scripts/install-deps.sh"} {
				if !strings.Contains(m.msg, want) {
					t.Errorf("Missing's message %q lacks %q", m.msg, want)
				}
			}

			var l fakeTB
			if p := LookPath(&l, noSuchTool, "imgbake-fake-pkg"); p != "" {
				t.Errorf("LookPath of a missing tool = %q", p)
			}
			if l.failed != tc.lookFails || l.skipped != tc.lookSkips {
				t.Errorf("LookPath of a missing tool: failed %v skipped %v, want %v %v", l.failed, l.skipped, tc.lookFails, tc.lookSkips)
			}
			for _, want := range []string{noSuchTool, "imgbake-fake-pkg", "scripts/install-deps.sh"} {
				if !strings.Contains(l.msg, want) {
					t.Errorf("LookPath's message %q lacks %q", l.msg, want)
				}
			}

			var f fakeTB
			exe, err := os.Executable()
			if err != nil {
				t.Fatal(err)
			}
			if p := LookPath(&f, exe, "none"); p != exe || f.failed || f.skipped {
				t.Errorf("LookPath of a present tool = %q, failed %v skipped %v", p, f.failed, f.skipped)
			}
		})
	}
}

// helperEnv makes TestHelperMissing run: it is the child of
// TestMissingFailsTheRealTest.
const helperEnv = "IMGBAKE_VMTEST_HELPER"

// TestHelperMissing is a VM test whose prerequisite is missing, run in a
// child process by TestMissingFailsTheRealTest.
func TestHelperMissing(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		t.Skip("helper of TestMissingFailsTheRealTest")
	}
	Gate(t)
	LookPath(t, noSuchTool, "imgbake-fake-pkg")
	t.Log("REACHED-AFTER-LOOKPATH")
}

// TestMissingFailsTheRealTest runs TestHelperMissing in a child go test
// process with a real *testing.T: under IMGBAKE_VM_TESTS=1 it FAILs
// (exit status 1) naming the tool, and stops there; without the variable it
// is skipped and the run passes.
func TestMissingFailsTheRealTest(t *testing.T) {
	run := func(vm string) (string, error) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperMissing$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), helperEnv+"=1", Env+"="+vm)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	out, err := run("1")
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("IMGBAKE_VM_TESTS=1: the child exited %v, want status 1 (a test failure):\n%s", err, out)
	}
	for _, want := range []string{"--- FAIL: TestHelperMissing", "missing prerequisite", noSuchTool, "imgbake-fake-pkg", "scripts/install-deps.sh"} {
		if !strings.Contains(out, want) {
			t.Errorf("IMGBAKE_VM_TESTS=1: the child's output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "--- SKIP") || strings.Contains(out, "REACHED-AFTER-LOOKPATH") {
		t.Errorf("IMGBAKE_VM_TESTS=1: the test was skipped or went on past the missing tool:\n%s", out)
	}

	out, err = run("")
	if err != nil {
		t.Fatalf("without IMGBAKE_VM_TESTS: the child failed (%v), want a skip:\n%s", err, out)
	}
	if !strings.Contains(out, "--- SKIP: TestHelperMissing") || strings.Contains(out, "--- FAIL") {
		t.Errorf("without IMGBAKE_VM_TESTS: want a skip:\n%s", out)
	}
}
