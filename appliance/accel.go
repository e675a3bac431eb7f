package appliance

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// /dev/kvm can open and KVM still be unusable: nested under some
// hypervisors qemu aborts setting an MSR ("failed to set MSR 0x10a"), or
// the guest hangs right after its real-mode setup. So before imgbake boots
// with KVM it boots the appliance kernel once under KVM with no root
// filesystem: a working KVM runs it to its "Unable to mount root fs" panic
// and qemu exits (-no-reboot) within a second or so. The verdict is cached
// (in the cache directory and in the process) for this host boot, qemu
// binary and kernel; anything else means TCG.

// kvmProbeLimit bounds the probe: a kernel under KVM panics for want of a
// root filesystem well within it.
var kvmProbeLimit = 15 * time.Second

// kvmVerdict is a cached probe result.
type kvmVerdict struct {
	Key    string    `json:"key"`
	Usable bool      `json:"usable"`
	Reason string    `json:"reason,omitempty"`
	At     time.Time `json:"at"`
}

// ResolveAccel returns the accelerator to boot kernel with: $IMGBAKE_ACCEL
// if set, "kvm" if /dev/kvm opens and a kernel boots under it, else "tcg".
// note says why KVM is not used when /dev/kvm is there (empty otherwise).
func ResolveAccel(ctx context.Context, kernel string) (accel, note string) {
	if a := os.Getenv("IMGBAKE_ACCEL"); a != "" {
		return a, ""
	}
	return (&QEMU{}).resolveAccel(ctx, kernel, kvmDeviceOpens())
}

// kvmVerdicts remembers verdicts in the process too (tests and sessions
// with their own cache directories probe once), and kvmProbeMu lets one
// probe run at a time, so concurrent starts wait for it instead of each
// booting a kernel.
var (
	kvmProbeMu  sync.Mutex
	kvmVerdicts = map[string]kvmVerdict{}
)

func (q *QEMU) resolveAccel(ctx context.Context, kernel string, kvmOpens bool) (accel, note string) {
	if !kvmOpens {
		return "tcg", ""
	}
	key, err := kvmProbeKey(q, kernel)
	if err != nil {
		return "tcg", fmt.Sprintf("/dev/kvm is present but not used: %v", err)
	}
	kvmProbeMu.Lock()
	defer kvmProbeMu.Unlock()
	if v, ok := kvmVerdicts[key]; ok {
		return verdictAccel(v)
	}
	path, err := kvmVerdictPath(key)
	if err != nil {
		return "tcg", fmt.Sprintf("/dev/kvm is present but not used: %v", err)
	}
	var v kvmVerdict
	if b, err := os.ReadFile(path); err == nil && json.Unmarshal(b, &v) == nil && v.Key == key {
		kvmVerdicts[key] = v
		return verdictAccel(v)
	}
	usable, reason := q.probeKVM(ctx, kernel)
	if ctx.Err() != nil {
		// Interrupted: decide nothing for the next run.
		return "tcg", "/dev/kvm is present but not used: the KVM check was interrupted"
	}
	v = kvmVerdict{Key: key, Usable: usable, Reason: reason, At: time.Now().UTC()}
	kvmVerdicts[key] = v
	if b, err := json.Marshal(v); err == nil {
		tmp := fmt.Sprintf("%s.%d.tmp", path, os.Getpid())
		if os.WriteFile(tmp, b, 0o644) == nil && os.Rename(tmp, path) != nil {
			os.Remove(tmp)
		}
	}
	return verdictAccel(v)
}

func verdictAccel(v kvmVerdict) (string, string) {
	if v.Usable {
		return "kvm", ""
	}
	return "tcg", "/dev/kvm is present but KVM does not work here (" + v.Reason + "); using TCG"
}

// kvmProbeKey names what the verdict depends on: the host boot (KVM, its
// module parameters, the hypervisor below), the qemu binary and the kernel.
func kvmProbeKey(q *QEMU, kernel string) (string, error) {
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return "", fmt.Errorf("reading the host's boot id: %w", err)
	}
	ident, err := q.qemuIdentity()
	if err != nil {
		return "", err
	}
	fi, err := os.Stat(kernel)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(strings.Join([]string{strings.TrimSpace(string(boot)), ident, kernel,
		fmt.Sprint(fi.Size(), fi.ModTime().UnixNano())}, "\n")))
	return hex.EncodeToString(sum[:8]), nil
}

func kvmVerdictPath(key string) (string, error) {
	cache, err := CacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, "accel")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "kvm-"+key+".json")
	// One file per key; past a few, older host boots' verdicts are dropped.
	if old, _ := filepath.Glob(filepath.Join(dir, "kvm-*.json")); len(old) > 8 {
		for _, p := range old {
			if p != path {
				os.Remove(p)
			}
		}
	}
	return path, nil
}

// probeKVM boots kernel under KVM with no initramfs and reports whether it
// got as far as its panic for want of a root filesystem.
func (q *QEMU) probeKVM(ctx context.Context, kernel string) (bool, string) {
	dir, err := PrivateDir("kvmprobe")
	if err != nil {
		return false, err.Error()
	}
	defer os.RemoveAll(dir)
	console := filepath.Join(dir, "console.log")
	pctx, cancel := context.WithTimeout(ctx, kvmProbeLimit)
	defer cancel()
	cmd := exec.CommandContext(pctx, q.binary(), "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-machine", "q35,accel=kvm", "-cpu", "host", "-m", "128", "-smp", "1",
		"-kernel", kernel, "-append", "console=ttyS0 panic=-1 loglevel=4",
		"-chardev", "file,id=con0,path="+escapeComma(console), "-serial", "chardev:con0")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	log, _ := os.ReadFile(console)
	booted := strings.Contains(string(log), "Kernel panic") || strings.Contains(string(log), "Unable to mount root")
	switch {
	case errors.Is(pctx.Err(), context.DeadlineExceeded):
		return false, fmt.Sprintf("a kernel under KVM did not get to its first panic in %s", kvmProbeLimit)
	case err != nil:
		msg := strings.TrimSpace(string(out))
		if i := strings.IndexByte(msg, '\n'); i > 0 {
			msg = msg[:i]
		}
		return false, fmt.Sprintf("qemu with KVM failed: %v: %s", err, msg)
	case !booted:
		return false, "a kernel under KVM stopped before its first panic"
	}
	return true, ""
}
