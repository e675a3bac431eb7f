package report

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/imgbake/imgbake/bake"
	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/session/api"
)

func TestWriteVersion(t *testing.T) {
	var out bytes.Buffer
	WriteVersion(&out, VersionInfo{
		Build: bake.Build{Version: "1.2.3", GoVersion: "go1.26", Platform: "linux/amd64"},
		Host: bake.Host{QEMU: bake.HostTool{Found: true, Path: "/usr/bin/qemu-system-x86_64", Version: "7.2"},
			Kernel: bake.HostTool{Error: "no /boot/vmlinuz-*"}, KVM: bake.HostKVM{Accel: "tcg", Note: "no /dev/kvm"}},
	})
	want := "imgbake 1.2.3 (unknown commit, go1.26, linux/amd64)\n" +
		"qemu:    /usr/bin/qemu-system-x86_64 (7.2)\n" +
		"kernel:  not found: no /boot/vmlinuz-*\n" +
		"accel:   tcg (no /dev/kvm)\n"
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
}

func TestSysprepOperations(t *testing.T) {
	var out bytes.Buffer
	SysprepOperations(&out)
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != len(fsops.SysprepOperations) {
		t.Fatalf("%d lines for %d operations:\n%s", len(lines), len(fsops.SysprepOperations), out.String())
	}
	for i, op := range fsops.SysprepOperations {
		mark := " "
		if op.Default {
			mark = "*"
		}
		if want := op.Name + " " + mark + " " + op.Description; lines[i] != want {
			t.Errorf("line %d: %q, want %q", i+1, lines[i], want)
		}
	}
}

// TestSessions: idle time only for a ready session, "busy" while it serves
// a request, "-" for an unknown owner.
func TestSessions(t *testing.T) {
	var out bytes.Buffer
	now := time.Now()
	err := Sessions(&out, []api.Status{
		{Name: "web", PID: 10, State: api.StateReady, Started: now, IdleMS: 90_000, Requests: 3, OwnerPID: 42, Disks: []string{"a.qcow2", "b.raw"}},
		{Name: "db", PID: 11, State: api.StateReady, Started: now, IdleMS: 0, Active: 1},
		{Name: "new", PID: 12, State: "starting", Started: now, IdleMS: -1},
	})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 4 || strings.Join(strings.Fields(lines[0]), " ") != "NAME PID STATE AGE IDLE REQUESTS OWNER DISK" {
		t.Fatalf("unexpected table:\n%s", out.String())
	}
	for i, want := range []string{"web 10 " + api.StateReady + " 0s 1m30s 3 42 a.qcow2,b.raw", "db 11 " + api.StateReady + " 0s busy 0 -", "new 12 starting 0s - 0 -"} {
		if got := strings.Join(strings.Fields(lines[i+1]), " "); got != want {
			t.Errorf("row %d: %q, want %q", i+1, got, want)
		}
	}
}
