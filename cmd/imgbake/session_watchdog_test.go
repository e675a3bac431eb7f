package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imgbake/imgbake/testimages"
)

// TestSessionWatchdogs: a session whose owner dies, and one left idle,
// stop by themselves, discard, and leave no qemu.
func TestSessionWatchdogs(t *testing.T) {
	tmp, base := sessionTest(t)
	disk := testimages.Fresh(t, testimages.NoPart)
	before := sha256File(t, disk)

	owner := exec.Command("sleep", "600")
	must(t, owner.Start())
	ownerDone := make(chan struct{})
	go func() { _ = owner.Wait(); close(ownerDone) }()
	t.Cleanup(func() { _ = owner.Process.Kill(); <-ownerDone })
	if r := imgbake(t, "session", "start", "--name", "owned", "--owner-pid", strconv.Itoa(owner.Process.Pid), "-a", disk); r.code != 0 {
		t.Fatalf("%s", r)
	}
	if r := imgbake(t, "session", "exec", "owned", "--", "touch", "/etc/changed"); r.code != 0 {
		t.Fatalf("%s", r)
	}
	must(t, owner.Process.Kill())
	<-ownerDone
	t.Logf("owner death noticed and discarded in %s", waitSessionGone(t, base, "owned", 30*time.Second).Round(time.Millisecond))
	waitNoQEMU(t, tmp, 5*time.Second)
	if sha256File(t, disk) != before {
		t.Fatal("the image changed after the owner died")
	}
	log, _ := os.ReadFile(filepath.Join(base, "owned.log"))
	if !strings.Contains(string(log), "owner process") || !strings.Contains(string(log), "discarded") {
		t.Errorf("the log does not say why:\n%s", log)
	}
	if r := imgbake(t, "session", "start", "--owner-pid", "999999999", "-a", disk); r.code != ExitUsage {
		t.Errorf("a missing owner: %s", r)
	}

	if r := imgbake(t, "session", "start", "--name", "idle", "--idle-timeout", "2s", "-a", disk); r.code != 0 {
		t.Fatalf("%s", r)
	}
	if r := imgbake(t, "session", "exec", "idle", "--", "sh", "-c", "sleep 3; touch /etc/changed"); r.code != 0 {
		t.Fatalf("a request longer than the idle timeout must not be cut: %s", r)
	}
	t.Logf("idle session gone %s after its last request", waitSessionGone(t, base, "idle", 30*time.Second).Round(time.Millisecond))
	waitNoQEMU(t, tmp, 5*time.Second)
	if sha256File(t, disk) != before {
		t.Fatal("the image changed after the idle timeout")
	}
	if r := imgbake(t, "session", "stop", "idle"); r.code != ExitUsage {
		t.Errorf("stop of a session that is gone: %s", r)
	}
	noLeftovers(t, tmp)
}

// TestSessionColdStart: `session start --cold` boots the appliance cold,
// where a start without it restores the saved one: the daemon opens the
// image with the options `session start` parsed (its config file), not
// with flags parsed again. The session log and the -v report say which.
func TestSessionColdStart(t *testing.T) {
	_, base := sessionTest(t)
	t.Setenv("IMGBAKE_COLD", "0")
	disk := testimages.Fresh(t, testimages.NoPart)
	for _, tc := range []struct {
		name      string
		flags     []string
		want, not string // in the "appliance booted" line
		appliance string // the appliance's own -v line
	}{
		{"warm", nil, "appliance booted (boot 1 of this session): warm start", "cold boot", "warm: restoring"},
		{"cold", []string{"--cold"}, "appliance booted (boot 1 of this session): cold boot (--cold)", "warm start", "cold boot)"},
	} {
		r := imgbake(t, append([]string{"session", "start", "-v", "--name", tc.name, "-a", disk}, tc.flags...)...)
		if r.code != 0 {
			t.Fatalf("session start %v: %s", tc.flags, r)
		}
		if !strings.Contains(r.stderr, "session "+tc.name+" ready: "+strings.TrimPrefix(tc.want, "appliance booted (boot 1 of this session): ")) {
			t.Errorf("session start -v %v does not say how it booted: %s", tc.flags, r)
		}
		cfg, err := os.ReadFile(filepath.Join(base, tc.name, "config.json"))
		if err != nil || strings.Contains(string(cfg), `"cold": true`) != (tc.name == "cold") {
			t.Errorf("config.json (%v):\n%s", err, cfg)
		}
		if r := imgbake(t, "session", "stop", "--discard", tc.name); r.code != 0 {
			t.Fatalf("stop: %s", r)
		}
		b, err := os.ReadFile(filepath.Join(base, tc.name+".log"))
		must(t, err)
		log := string(b)
		var booted string
		for _, l := range strings.Split(log, "\n") {
			if strings.Contains(l, "appliance booted") {
				booted = l
			}
		}
		if !strings.Contains(booted, tc.want) || strings.Contains(booted, tc.not) || !strings.Contains(log, tc.appliance) {
			t.Errorf("session %s %v: want %q (and %q from the appliance), not %q in its log:\n%s", tc.name, tc.flags, tc.want, tc.appliance, tc.not, log)
		}
		t.Logf("%s", strings.TrimSpace(booted))
	}
}
