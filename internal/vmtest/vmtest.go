// Package vmtest is the one gate of imgbake's VM integration tests, after
// u-root's vmtest: every test that boots a VM, needs a test image or needs
// a host tool goes through it, so "the suite ran" and "the suite passed"
// mean the same thing.
//
// IMGBAKE_VM_TESTS=1 (make test sets it) asks for the whole suite. Then a
// missing prerequisite (qemu, a kernel, the agent, a test image, tmux,
// ansible, sshd, debugfs, busybox, ...) fails the test that needs it, with a
// message naming what is missing and how to get it (scripts/install-deps.sh
// for host packages, make images for the test images, make agent for the
// agent): CI cannot be green with VM tests that did not run. Without the
// variable VM tests skip, and a unit test whose host tool is missing skips.
//
// A skip that is not about a prerequisite (testing.Short, a test that needs
// root, a host property such as KVM not working) stays a plain t.Skip with
// its reason.
package vmtest

import (
	"fmt"
	"os"
	"os/exec"
)

// Env is the variable that enables the VM tests and makes missing
// prerequisites failures.
const Env = "IMGBAKE_VM_TESTS"

// InstallDeps is how to install a missing host package.
const InstallDeps = "scripts/install-deps.sh installs it"

// TB is the part of testing.TB the gate uses; *testing.T, *testing.B and
// testing.TB satisfy it.
type TB interface {
	Helper()
	Skip(args ...any)
	Fatalf(format string, args ...any)
}

// Enabled reports whether IMGBAKE_VM_TESTS=1.
func Enabled() bool { return os.Getenv(Env) == "1" }

// Gate skips t unless IMGBAKE_VM_TESTS=1. Every test that boots a VM or
// needs a test image calls it first (directly or through its package's
// helper, which then checks the package's own prerequisites with Missing).
func Gate(t TB) {
	t.Helper()
	if !Enabled() {
		t.Skip("VM test: set " + Env + "=1 to run it (make test does)")
	}
}

// Missing ends t for want of a prerequisite, described by format and args
// (say what is missing and how to get it): a failure when IMGBAKE_VM_TESTS=1,
// a skip otherwise. With a *testing.T it does not return.
func Missing(t TB, format string, args ...any) {
	t.Helper()
	msg := "missing prerequisite: " + fmt.Sprintf(format, args...)
	if Enabled() {
		t.Fatalf("%s\n(%s=1 runs the whole suite: a missing prerequisite is a failure, not a skip)", msg, Env)
		return
	}
	t.Skip(msg)
}

// LookPath returns the path of the host tool, or ends t with Missing
// naming the tool and its Debian package, which scripts/install-deps.sh
// installs.
func LookPath(t TB, tool, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		Missing(t, "%s not found (%v): install the Debian package %s (%s)", tool, err, pkg, InstallDeps)
		return ""
	}
	return p
}
