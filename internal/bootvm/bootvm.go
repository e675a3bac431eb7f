// Package bootvm boots a bootable disk image for real under QEMU (TCG,
// direct kernel boot with the image's own kernel, sshd forwarded to a
// localhost port) and logs in over ssh. The boot tests of cmd/imgbake and
// the benchmark's booted-VM variant share it; it is not used by imgbake
// itself.
package bootvm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Options say what to boot.
type Options struct {
	Name     string // for messages and the console log's name
	Disk     string // the disk; QEMU writes to it (pass an overlay to keep an image as it is)
	Format   string // the disk's format, never probed: "qcow2" or "raw"
	Kernel   string // the guest's own kernel and initramfs, as host files
	Initrd   string
	RootUUID string // the root filesystem's UUID, for root=UUID=
	Dir      string // where the serial console log goes
	MemMiB   int    // guest memory; 0 means 512
}

// Guest is one VM running under QEMU, sshd forwarded to Port on 127.0.0.1.
type Guest struct {
	Name   string
	Port   int
	Serial string // the guest's console log

	cmd      *exec.Cmd
	exited   chan struct{} // closed when qemu has exited and been reaped
	err      error         // qemu's exit status, once exited is closed
	stopOnce sync.Once
	stderr   lockedBuffer
}

// Start boots the disk: TCG only, the root on a virtio disk, a user network
// forwarding a free localhost port to the guest's port 22, the kernel
// panicking into a QEMU exit when it cannot mount the root. The caller
// must Stop the guest on every path.
func Start(o Options) (*Guest, error) {
	if o.Format != "qcow2" && o.Format != "raw" {
		return nil, fmt.Errorf("bootvm: %s: format %q: want qcow2 or raw", o.Disk, o.Format)
	}
	mem := o.MemMiB
	if mem == 0 {
		mem = 512
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	g := &Guest{Name: o.Name, Port: port, Serial: filepath.Join(o.Dir, o.Name+".serial.log"), exited: make(chan struct{})}
	g.cmd = exec.Command("qemu-system-x86_64", "-accel", "tcg", "-m", strconv.Itoa(mem), "-smp", "1",
		"-nodefaults", "-display", "none", "-no-reboot", "-serial", "file:"+g.Serial,
		"-kernel", o.Kernel, "-initrd", o.Initrd,
		// panic=-1 with -no-reboot: a kernel that cannot mount the root ends qemu at once.
		"-append", "root=UUID="+o.RootUUID+" console=ttyS0 rw panic=-1",
		"-drive", "file="+o.Disk+",if=virtio,format="+o.Format,
		"-netdev", fmt.Sprintf("user,id=net0,hostfwd=tcp:127.0.0.1:%d-:22", port),
		"-device", "virtio-net-pci,netdev=net0")
	g.cmd.Stderr = &g.stderr
	if err := g.cmd.Start(); err != nil {
		return nil, fmt.Errorf("bootvm: starting qemu for %s: %w", o.Name, err)
	}
	go func() { g.err = g.cmd.Wait(); close(g.exited) }()
	return g, nil
}

// FreePort is a localhost TCP port free when asked. QEMU binds it later; if
// another process was quicker, QEMU exits and WaitForLogin says so.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("bootvm: finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Stop kills QEMU and reaps it; it is safe to call more than once.
func (g *Guest) Stop() {
	g.stopOnce.Do(func() {
		_ = g.cmd.Process.Kill()
		<-g.exited
	})
}

// Exited is closed once QEMU has exited and been reaped.
func (g *Guest) Exited() <-chan struct{} { return g.exited }

// SSHArgs are the ssh options that touch nothing of the host's ssh setup:
// no config file, no known_hosts, only the given key.
func SSHArgs(key string, port int) []string {
	return []string{"-F", "/dev/null", "-i", key, "-p", strconv.Itoa(port), "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR"}
}

// SSH runs command in the guest as root and returns its combined output.
func (g *Guest) SSH(ctx context.Context, key, command string) ([]byte, error) {
	return exec.CommandContext(ctx, "ssh", append(SSHArgs(key, g.Port), "root@127.0.0.1", command)...).CombinedOutput()
}

// WaitForLogin runs command over ssh as root until the login works and
// returns its output. It fails, with QEMU's stderr and the end of the
// console, when QEMU exits, ctx ends or timeout passes first.
func (g *Guest) WaitForLogin(ctx context.Context, key, command string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	var lastErr string
	for time.Now().Before(deadline) {
		select {
		case <-g.exited:
			return "", fmt.Errorf("%s: qemu exited before sshd accepted the key: %v\nqemu stderr: %s\nconsole:\n%s", g.Name, g.err, g.stderr.String(), g.ConsoleTail())
		case <-ctx.Done():
			return "", fmt.Errorf("%s: waiting for ssh: %w", g.Name, ctx.Err())
		default:
		}
		out, err := g.SSH(ctx, key, command)
		if err == nil {
			return string(out), nil
		}
		lastErr = fmt.Sprintf("%v: %s", err, bytes.TrimSpace(out))
		select {
		case <-time.After(2 * time.Second):
		case <-ctx.Done():
		case <-g.exited:
		}
	}
	return "", fmt.Errorf("%s: no ssh login within %v (last attempt: %s)\nconsole:\n%s", g.Name, timeout, lastErr, g.ConsoleTail())
}

// ConsoleTail is the last 40 lines of the guest's serial console.
func (g *Guest) ConsoleTail() string {
	b, err := os.ReadFile(g.Serial)
	if err != nil {
		return fmt.Sprintf("(no console log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	return strings.Join(lines, "\n")
}

// NewKey makes a passphrase-less ed25519 key pair at path (and path.pub).
func NewKey(path string) error {
	out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "imgbake-test", "-f", path).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ssh-keygen: %w: %s", err, out)
	}
	return nil
}

// Overlay creates a qcow2 overlay at path on top of the qcow2 base, so a
// boot writes nothing to the base.
func Overlay(base, path string) error {
	out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", base, path).CombinedOutput()
	if err != nil {
		return fmt.Errorf("qemu-img create %s: %w: %s", path, err, out)
	}
	return nil
}

// lockedBuffer is QEMU's stderr, written by exec's copier goroutine and
// read by WaitForLogin.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var errNoPackages = errors.New("bootvm: no packages asked for")
