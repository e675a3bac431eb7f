package appliance

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeQEMU writes a qemu-system-x86_64 stand-in that runs script (sh) with
// $console set to the file its -chardev file,path= option names.
func fakeQEMU(t *testing.T, script string) *QEMU {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "qemu-system-x86_64")
	body := `#!/bin/sh
for a in "$@"; do case "$a" in file,id=con0,path=*) console="${a#file,id=con0,path=}";; esac; done
echo "$@" >> "$0.calls"
` + script + "\n"
	if err := os.WriteFile(bin, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return &QEMU{Binary: bin}
}

func TestResolveAccel(t *testing.T) {
	kernel := filepath.Join(t.TempDir(), "vmlinuz")
	if err := os.WriteFile(kernel, []byte("kernel"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := kvmProbeLimit
	kvmProbeLimit = 2 * time.Second
	t.Cleanup(func() { kvmProbeLimit = old })
	tests := []struct {
		name     string
		kvmOpens bool
		script   string
		want     string
		noteHas  string
	}{
		{"no /dev/kvm: TCG without a probe", false, "exit 99", "tcg", ""},
		{"kernel panics for want of a root fs: KVM", true,
			`echo "Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)" > "$console"; exit 0`, "kvm", ""},
		{"qemu aborts setting an MSR", true,
			`echo "qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69" >&2; kill -ABRT $$`, "tcg", "failed to set MSR 0x10a"},
		{"guest hangs", true, `exec sleep 30`, "tcg", "did not get to its first panic"},
		{"qemu exits before the kernel ran (a reset)", true, `echo "Probing EDD" > "$console"; exit 0`, "tcg", "stopped before its first panic"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cache := t.TempDir()
			t.Setenv("IMGBAKE_CACHE_DIR", cache)
			q := fakeQEMU(t, tc.script)
			start := time.Now()
			got, note := q.resolveAccel(context.Background(), kernel, tc.kvmOpens)
			if got != tc.want || !strings.Contains(note, tc.noteHas) || (tc.noteHas == "") != (note == "") {
				t.Fatalf("resolveAccel = %q, %q; want %q with a note containing %q", got, note, tc.want, tc.noteHas)
			}
			if time.Since(start) > kvmProbeLimit+5*time.Second {
				t.Errorf("the probe took %s, over its limit", time.Since(start))
			}
			// The verdict is cached: a second call runs no qemu.
			got2, note2 := q.resolveAccel(context.Background(), kernel, tc.kvmOpens)
			if got2 != got || note2 != note {
				t.Errorf("second call = %q, %q; first %q, %q", got2, note2, got, note)
			}
			// Another cache directory in the same process: the process
			// remembers; a new process reads the file (simulated by
			// forgetting).
			t.Setenv("IMGBAKE_CACHE_DIR", t.TempDir())
			if got3, _ := q.resolveAccel(context.Background(), kernel, tc.kvmOpens); got3 != got {
				t.Errorf("with another cache dir = %q, want %q", got3, got)
			}
			t.Setenv("IMGBAKE_CACHE_DIR", cache)
			kvmProbeMu.Lock()
			clear(kvmVerdicts)
			kvmProbeMu.Unlock()
			if got4, _ := q.resolveAccel(context.Background(), kernel, tc.kvmOpens); got4 != got {
				t.Errorf("from the cache file = %q, want %q", got4, got)
			}
			calls, _ := os.ReadFile(q.Binary + ".calls")
			n := strings.Count(string(calls), "accel=kvm")
			if want := map[bool]int{true: 1, false: 0}[tc.kvmOpens]; n != want {
				t.Errorf("qemu ran %d times with KVM, want %d", n, want)
			}
		})
	}
}

func TestResolveAccelOverride(t *testing.T) {
	t.Setenv("IMGBAKE_ACCEL", "tcg")
	if a, note := ResolveAccel(context.Background(), "/nonexistent"); a != "tcg" || note != "" {
		t.Errorf("IMGBAKE_ACCEL=tcg: got %q, %q", a, note)
	}
}
