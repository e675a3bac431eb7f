package appliance

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/digitalocean/go-qemu/qmp"

	"github.com/imgbake/imgbake/appliance/proto"
)

// Warm start: instead of booting the kernel for every command (about
// 2.3 s under TCG), the appliance is booted once with no disk, saved with
// QEMU's migration to a state file in the appliance cache, and every later
// command restores that state (-incoming) and hot-plugs its disks into PCIe
// root ports that were present at save time. Anything unexpected falls
// back to a cold boot; the snapshot is never a reason to fail.

const (
	warmFormat = "1" // bump when the saved machine changes shape
	warmPorts  = 4   // hot-plug slots, so up to this many disks restore warm
)

// warmArgs are the devices a restorable machine has beyond the cold one.
func warmArgs() []string {
	var a []string
	for i := 0; i < warmPorts; i++ {
		a = append(a, "-device", fmt.Sprintf("pcie-root-port,id=rp%d,chassis=%d,slot=%d", i, i+1, i+1))
	}
	return a
}

// qemuIdentity names the qemu binary exactly enough for the snapshot key:
// a different or upgraded qemu cannot load another's state.
func (q *QEMU) qemuIdentity() (string, error) {
	bin := q.Binary
	if bin == "" {
		bin = "qemu-system-x86_64"
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		return "", err
	}
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s %d %d", path, fi.Size(), fi.ModTime().UnixNano()), nil
}

// snapshotFile returns where the state for this machine lives, keyed by
// everything the restore depends on.
func (q *QEMU) snapshotFile(app *Appliance, spec MachineSpec) (string, error) {
	ident, err := q.qemuIdentity()
	if err != nil {
		return "", err
	}
	key, _ := json.Marshal(struct {
		Format, QEMU, Appliance, Kernel, Initramfs, Accel, Append string
		Memory, Ports                                             int
		Network                                                   bool
		Devices                                                   []string
	}{warmFormat, ident, app.Key, spec.Kernel, spec.Initramfs, spec.Accel, spec.Append,
		spec.MemoryMB, warmPorts, spec.Network, warmArgs()})
	sum := sha256.Sum256(key)
	return filepath.Join(app.Dir, "snapshot-"+hex.EncodeToString(sum[:8])+".state"), nil
}

// SnapshotInfo describes the saved appliance state for `appliance info`.
func SnapshotInfo(app *Appliance, memoryMB int, network bool) (path string, size int64, err error) {
	q := &QEMU{}
	spec := MachineSpec{Kernel: app.Kernel.Image, Initramfs: app.Initramfs, MemoryMB: memoryMB,
		Accel: AccelAvailable(), Network: network, Append: kernelCmdline}
	path, err = q.snapshotFile(app, spec)
	if err != nil {
		return "", 0, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return path, 0, err
	}
	return path, fi.Size(), nil
}

// saveSnapshot boots the appliance with no disk, waits for the agent, and
// saves the machine to path.
func (q *QEMU) saveSnapshot(ctx context.Context, spec MachineSpec, path string) error {
	dir, err := PrivateDir("save")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	spec.Dir, spec.Disks = dir, nil
	m, err := q.launch(spec, warmArgs())
	if err != nil {
		return err
	}
	defer m.Kill()
	conn, err := m.dial(ctx, m.chanSock)
	if err != nil {
		return m.explain(err)
	}
	if err := waitReady(ctx, conn, m.done, 60*time.Second); err != nil {
		conn.Close()
		return m.explain(err)
	}
	// Hang up first, so the saved agent is waiting for a host, as it
	// will be right after every restore.
	conn.Close()
	time.Sleep(150 * time.Millisecond)
	mon, err := m.qmpConnect(ctx)
	if err != nil {
		return err
	}
	tmp := path + ".partial"
	defer os.Remove(tmp)
	steps := []string{
		// The default cap (128 MiB/s) makes saving slow for nothing.
		`{"execute":"migrate-set-parameters","arguments":{"max-bandwidth":17179869184}}`,
		`{"execute":"stop"}`,
		fmt.Sprintf(`{"execute":"migrate","arguments":{"uri":%q}}`, "exec:cat > "+shellQuote(tmp)),
	}
	for _, c := range steps {
		if _, err := runQMP(mon, c); err != nil {
			return fmt.Errorf("saving the appliance: %s: %w", c, err)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err := runQMP(mon, `{"execute":"query-migrate"}`)
		if err != nil {
			return err
		}
		var r struct {
			Return struct {
				Status    string `json:"status"`
				ErrorDesc string `json:"error-desc"`
			} `json:"return"`
		}
		_ = json.Unmarshal(out, &r)
		switch r.Return.Status {
		case "completed":
			return os.Rename(tmp, path)
		case "failed", "cancelled":
			return fmt.Errorf("saving the appliance: migration %s: %s", r.Return.Status, r.Return.ErrorDesc)
		}
		if time.Now().After(deadline) {
			return errors.New("saving the appliance: migration did not finish in 60s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// restore starts qemu from the saved state and hot-plugs spec's disks.
func (q *QEMU) restore(ctx context.Context, spec MachineSpec, path string) (*qemuMachine, error) {
	disks := spec.Disks
	if len(disks) > warmPorts {
		return nil, fmt.Errorf("%d disks: only %d hot-plug slots", len(disks), warmPorts)
	}
	spec.Disks = nil
	m, err := q.launch(spec, append(warmArgs(), "-incoming", "exec:cat "+shellQuote(path)))
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			m.Kill()
		}
	}()
	t0 := time.Now()
	mon, err := m.qmpConnect(ctx)
	if err != nil {
		return nil, m.explain(err)
	}
	m.phases = append(m.phases, "qmp "+time.Since(t0).Round(time.Millisecond).String())
	// The VM runs by itself once the incoming migration is loaded.
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, err := runQMP(mon, `{"execute":"query-status"}`)
		if err != nil {
			return nil, m.explain(err)
		}
		var r struct {
			Return struct {
				Status string `json:"status"`
			} `json:"return"`
		}
		_ = json.Unmarshal(out, &r)
		if r.Return.Status == "running" {
			break
		}
		if r.Return.Status == "postmigrate" || r.Return.Status == "paused" {
			if _, err := runQMP(mon, `{"execute":"cont"}`); err != nil {
				return nil, err
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("restored VM still %q after 20s", r.Return.Status)
		}
		select {
		case <-m.done:
			return nil, m.explain(ErrApplianceDied)
		case <-time.After(5 * time.Millisecond):
		}
	}
	m.phases = append(m.phases, "loaded "+time.Since(t0).Round(time.Millisecond).String())
	if hotplugFault != nil {
		if err := hotplugFault(); err != nil {
			return nil, err
		}
	}
	for i, d := range disks {
		abs, err := filepath.Abs(d.Path)
		if err != nil {
			return nil, err
		}
		file, _ := json.Marshal(map[string]any{"execute": "blockdev-add", "arguments": map[string]any{
			"driver": "file", "filename": abs, "node-name": fmt.Sprintf("file%d", i), "read-only": d.ReadOnly, "discard": "unmap"}})
		format, _ := json.Marshal(map[string]any{"execute": "blockdev-add", "arguments": map[string]any{
			"driver": d.Format, "file": fmt.Sprintf("file%d", i), "node-name": fmt.Sprintf("disk%d", i), "read-only": d.ReadOnly, "discard": "unmap"}})
		dev, _ := json.Marshal(map[string]any{"execute": "device_add", "arguments": map[string]any{
			"driver": "virtio-blk-pci", "drive": fmt.Sprintf("disk%d", i), "serial": fmt.Sprintf("imgbake%d", i),
			"bus": fmt.Sprintf("rp%d", i), "id": fmt.Sprintf("vd%d", i)}})
		for _, c := range [][]byte{file, format, dev} {
			if _, err := runQMP(mon, string(c)); err != nil {
				return nil, fmt.Errorf("hot-plugging %s: %w", d.Path, err)
			}
		}
	}
	m.phases = append(m.phases, "hot-plugged "+time.Since(t0).Round(time.Millisecond).String())
	conn, err := m.dial(ctx, m.chanSock)
	if err != nil {
		return nil, m.explain(err)
	}
	m.conn = conn
	m.qmpMu.Lock()
	m.qmp = mon
	m.qmpMu.Unlock()
	ok = true
	return m, nil
}

// hotplugFault, when set by tests, makes the hot-plug fail.
var hotplugFault func() error

// qmpConnect attaches QMP synchronously (warm start needs it on the
// critical path), waiting for qemu to create the socket.
func (m *qemuMachine) qmpConnect(ctx context.Context) (*qmp.SocketMonitor, error) {
	var mon *qmp.SocketMonitor
	err := m.retry(ctx, 10*time.Second, "connecting to QMP", func() error {
		sm, err := qmp.NewSocketMonitor("unix", m.qmpSock, 5*time.Second)
		if err == nil {
			if err = sm.Connect(); err == nil {
				mon = sm
			}
		}
		return err
	})
	return mon, err
}

// runQMP runs one command and turns a QMP error reply into an error.
func runQMP(mon *qmp.SocketMonitor, cmd string) ([]byte, error) {
	out, err := mon.Run([]byte(cmd))
	if err != nil {
		return nil, err
	}
	var e struct {
		Error *struct {
			Desc string `json:"desc"`
		} `json:"error"`
	}
	if json.Unmarshal(out, &e) == nil && e.Error != nil {
		return nil, errors.New(e.Error.Desc)
	}
	return out, nil
}

// waitReady reads frames until the agent says it is ready.
func waitReady(ctx context.Context, conn net.Conn, died <-chan struct{}, limit time.Duration) error {
	ready := make(chan error, 1)
	go func() {
		fr := proto.NewReader(bufio.NewReader(conn))
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				ready <- err
				return
			}
			if f.Type == proto.TReady {
				ready <- nil
				return
			}
		}
	}()
	select {
	case err := <-ready:
		return err
	case <-died:
		return ErrApplianceDied
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(limit):
		return fmt.Errorf("the agent was not ready within %s", limit)
	}
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
