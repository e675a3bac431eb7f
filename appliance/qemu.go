package appliance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/digitalocean/go-qemu/qmp"

	"github.com/imgbake/imgbake/appliance/proto"
)

// QEMU starts qemu-system-x86_64 directly: no daemon, nothing to configure.
type QEMU struct {
	Binary string // default: qemu-system-x86_64 on PATH
}

// Name implements Backend.
func (q *QEMU) Name() string { return "qemu" }

// kvmDeviceOpens reports whether /dev/kvm can be opened for writing. That
// does not mean KVM works: ResolveAccel also boots a kernel under it.
func kvmDeviceOpens() bool {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

// binary is the qemu to run: Binary, or qemu-system-x86_64 on PATH.
func (q *QEMU) binary() string {
	if q.Binary != "" {
		return q.Binary
	}
	return "qemu-system-x86_64"
}

// qemuArgs builds the command line. Disks go through -blockdev in JSON so
// paths need no escaping and the format is never probed.
func qemuArgs(spec MachineSpec, chanSock, qmpSock, consoleLog string) ([]string, error) {
	args := []string{
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-machine", "q35,accel=" + spec.Accel,
		"-m", strconv.Itoa(spec.MemoryMB),
		"-smp", strconv.Itoa(spec.cpus()),
		"-kernel", spec.Kernel, "-initrd", spec.Initramfs, "-append", spec.Append,
		"-chardev", "file,id=con0,path=" + escapeComma(consoleLog),
		"-serial", "chardev:con0",
		"-device", "virtio-serial-pci,id=vser0",
		"-chardev", "socket,id=ch0,path=" + escapeComma(chanSock) + ",server=on,wait=off",
		"-device", "virtserialport,bus=vser0.0,chardev=ch0,name=" + proto.ChannelName,
		"-qmp", "unix:" + escapeComma(qmpSock) + ",server=on,wait=off",
		"-device", "virtio-rng-pci",
	}
	// PCIe root ports for hot-plug: the disks of a warm start, the data
	// disk of bulk copies (datadisk.go).
	for i := 0; i < hotplugPorts; i++ {
		args = append(args, "-device", fmt.Sprintf("pcie-root-port,id=rp%d,chassis=%d,slot=%d", i, i+1, i+1))
	}
	if spec.Accel == "kvm" {
		args = append(args, "-cpu", "host")
	}
	if spec.Network {
		// User-mode networking: outbound only, nothing listens on the host.
		args = append(args, "-netdev", "user,id=net0", "-device", "virtio-net-pci,netdev=net0,romfile=")
	}
	for i, d := range spec.Disks {
		if d.Format != "raw" && d.Format != "qcow2" {
			return nil, fmt.Errorf("disk %s: unsupported format %q", d.Path, d.Format)
		}
		// Absolute: qemu runs in the private directory, not the caller's.
		abs, err := filepath.Abs(d.Path)
		if err != nil {
			return nil, err
		}
		file, fmtNode := diskNodes(abs, d.Format, fmt.Sprintf("file%d", i), fmt.Sprintf("disk%d", i), d.ReadOnly, "unmap")
		fb, _ := json.Marshal(file)
		db, _ := json.Marshal(fmtNode)
		args = append(args, "-blockdev", string(fb), "-blockdev", string(db),
			"-device", fmt.Sprintf("virtio-blk-pci,drive=disk%d,serial=imgbake%d", i, i))
	}
	return args, nil
}

func escapeComma(s string) string { return strings.ReplaceAll(s, ",", ",,") }

// Start implements Backend.
func (q *QEMU) Start(ctx context.Context, spec MachineSpec) (Machine, error) {
	m, err := q.launch(spec, nil)
	if err != nil {
		return nil, err
	}
	conn, err := m.dial(ctx, m.chanSock)
	if err != nil {
		m.Kill()
		return nil, m.explain(err)
	}
	m.conn = conn
	go m.connectQMP()
	return m, nil
}

// launch starts qemu for spec with extra arguments appended and files
// passed as fds 3, 4, ..., and reaps it in the background. The caller
// connects the channel and QMP.
func (q *QEMU) launch(spec MachineSpec, extra []string, files ...*os.File) (*qemuMachine, error) {
	bin := q.binary()
	path, err := exec.LookPath(bin)
	if err != nil {
		return nil, fmt.Errorf("%s not found: install QEMU (Debian: apt-get install qemu-system-x86): %w", bin, err)
	}
	m := &qemuMachine{
		dir:      spec.Dir,
		chanSock: filepath.Join(spec.Dir, "agent.sock"),
		qmpSock:  filepath.Join(spec.Dir, "qmp.sock"),
		console:  filepath.Join(spec.Dir, "console.log"),
		done:     make(chan struct{}),
	}
	args, err := qemuArgs(spec, m.chanSock, m.qmpSock, m.console)
	if err != nil {
		return nil, err
	}
	args = append(args, extra...)
	stderr, err := os.OpenFile(filepath.Join(spec.Dir, "qemu.stderr"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	defer stderr.Close()
	cmd := exec.Command(path, args...)
	cmd.Stderr = stderr
	cmd.Stdout = stderr
	cmd.ExtraFiles = files
	cmd.Dir = spec.Dir
	// Pdeathsig: qemu dies with us even on SIGKILL. Setpgid: a terminal's
	// Ctrl-C reaches only imgbake, which then shuts the VM down in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", path, err)
	}
	m.cmd = cmd
	if err := os.WriteFile(filepath.Join(spec.Dir, "qemu.pid"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o600); err != nil {
		m.Kill()
		return nil, err
	}
	go func() {
		m.err = cmd.Wait()
		close(m.done)
	}()
	return m, nil
}

type qemuMachine struct {
	phases                          []string // restore milestones, for -v
	dir, chanSock, qmpSock, console string
	cmd                             *exec.Cmd
	conn                            net.Conn
	done                            chan struct{}
	err                             error
	qmpMu                           sync.Mutex
	qmp                             *qmp.SocketMonitor
	portsUsed                       int // root ports taken by hot-plugged disks
	hotplugMu                       sync.Mutex
	killOnce                        sync.Once
	snapshots                       map[int]string // disk index → its top node after snapshots (else disk<N>)
	snapCount                       int
}

// dial connects to a socket qemu creates at startup.
func (m *qemuMachine) dial(ctx context.Context, path string) (net.Conn, error) {
	var c net.Conn
	err := m.retry(ctx, 30*time.Second, "connecting to "+path, func() (err error) {
		c, err = net.Dial("unix", path)
		return err
	})
	return c, err
}

// retry calls try every 2 ms until it succeeds, qemu exits, ctx ends or
// limit passes; qemu creates its sockets a moment after it starts.
func (m *qemuMachine) retry(ctx context.Context, limit time.Duration, what string, try func() error) error {
	deadline := time.Now().Add(limit)
	for {
		err := try()
		if err == nil {
			return nil
		}
		select {
		case <-m.done:
			return ErrApplianceDied
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
}

// connectQMP attaches the monitor in the background; it is used for an
// orderly quit and for hot-plug, never on the critical path to ready.
// A busy host can make one attempt time out (the greeting comes late
// under TCG with other VMs running), so it retries for a while: without
// QMP a session has no data disk and no layer snapshots.
func (m *qemuMachine) connectQMP() {
	for deadline, wait := time.Now().Add(60*time.Second), 20*time.Millisecond; ; wait = min(2*wait, time.Second) {
		mon, err := qmp.NewSocketMonitor("unix", m.qmpSock, 5*time.Second)
		if err == nil {
			// Connect has no deadline of its own (it waits for QEMU's
			// greeting): closing the socket ends a stuck attempt.
			done := make(chan error, 1)
			go func() { done <- mon.Connect() }()
			select {
			case err = <-done:
			case <-time.After(3 * time.Second):
				mon.Disconnect()
				if err = <-done; err == nil {
					err = errors.New("QMP greeting timed out")
				}
			}
			if err == nil {
				m.qmpMu.Lock()
				m.qmp = mon
				m.qmpMu.Unlock()
				return
			}
			mon.Disconnect()
		}
		if time.Now().After(deadline) {
			return
		}
		select {
		case <-m.done:
			return
		case <-time.After(wait):
		}
	}
}

// hotplugDisk adds a disk to a running machine: its file node, its format
// node, and the virtio device on a free root port.
func hotplugDisk(mon qmp.Monitor, file, format blockdevNode, dev virtioBlk) error {
	if err := blockdevAdd(mon, file); err != nil {
		return err
	}
	if err := blockdevAdd(mon, format); err != nil {
		return err
	}
	return deviceAdd(mon, dev)
}

func (m *qemuMachine) Channel() net.Conn     { return m.conn }
func (m *qemuMachine) Done() <-chan struct{} { return m.done }
func (m *qemuMachine) Err() error            { return m.err }
func (m *qemuMachine) ConsoleLog() string    { return m.console }

// Kill asks QEMU to quit over QMP, then kills it, and always reaps it.
func (m *qemuMachine) Kill() {
	m.killOnce.Do(func() {
		if m.cmd == nil || m.cmd.Process == nil {
			return
		}
		select {
		case <-m.done:
		default:
			_ = m.cmd.Process.Signal(syscall.SIGKILL)
			<-m.done
		}
		m.qmpMu.Lock()
		if m.qmp != nil {
			_ = m.qmp.Disconnect()
		}
		m.qmpMu.Unlock()
		if m.conn != nil {
			m.conn.Close()
		}
	})
}

// explain adds QEMU's own error output to a start failure.
func (m *qemuMachine) explain(err error) error {
	if s := m.Diagnostics(); s != "" {
		return fmt.Errorf("%w: qemu: %s", err, s)
	}
	return err
}

func (m *qemuMachine) Diagnostics() string {
	b, _ := os.ReadFile(filepath.Join(m.dir, "qemu.stderr"))
	return lastLines(strings.TrimSpace(string(b)), 5)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// applianceCPUs is the appliance's vCPU count. Two, although a TCG vCPU
// costs a host core while it runs: measured here, copy-in's extraction of
// 7,000 files ran 1.4x faster with a second vCPU (interrupts, block I/O
// completion and kernel threads leave the agent's vCPU), cold boot got
// ~0.2 s slower, warm start and step latency did not change. An idle
// vCPU halts and costs nothing. WithCPUs(1) suits several appliances
// at once on few cores (imgbake bake), where vCPU threads beyond the cores
// cost more CPU than they save.
const applianceCPUs = 2

// FindQEMU returns the qemu binary a run would start (its path on PATH) and
// the first line of its --version output, e.g. "QEMU emulator version 7.2.22
// (Debian 1:7.2+dfsg-7+deb12u18)".
func FindQEMU(ctx context.Context) (path, version string, err error) {
	q := &QEMU{}
	if path, err = exec.LookPath(q.binary()); err != nil {
		return "", "", fmt.Errorf("%s not found: install QEMU (Debian: apt-get install qemu-system-x86): %w", q.binary(), err)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--version").Output()
	if err != nil {
		return path, "", fmt.Errorf("%s --version: %w", path, err)
	}
	version, _, _ = strings.Cut(strings.TrimSpace(string(out)), "\n")
	return path, version, nil
}
