package appliance

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/digitalocean/go-qemu/qmp"
	"github.com/digitalocean/go-qemu/qmp/raw"
	"golang.org/x/sys/unix"

	"github.com/imgbake/imgbake/appliance/proto"
)

// Warm start: instead of booting the kernel for every command (about
// 2.3 s under TCG), the appliance is booted once with no disk and saved
// into the appliance cache; every later command restores it and hot-plugs
// its disks into PCIe root ports that were present at save time. Anything
// unexpected falls back to a cold boot; the snapshot is never a reason to
// fail.
//
// The guest's RAM lives in a file (memory-backend-file) and migration skips
// it (x-ignore-shared), so the saved state is only the devices' (~400 KB).
// The save maps the RAM file shared, so the file is the guest's memory; a
// restore maps it private, so the guest starts from that memory, its writes
// stay in the restoring qemu, and any number of restores share the file's
// page cache. Restoring then costs about 0.2 s instead of reading a
// 120 MB stream.

const (
	warmFormat   = "4" // bump when the saved machine changes shape
	hotplugPorts = 4   // root ports: up to this many disks restore warm

	snapshotState = "state" // device state (the migration stream)
	snapshotRAM   = "ram"   // guest memory
)

// A restored guest's memory is the saved file mapped privately, so every
// page it writes for the first time costs the host a 4 KiB copy-on-write
// fault (22 µs on a host that is itself a VM): a copy of 7,000 files spent
// ~0.4 s on them. So only the first warmFileMB of the guest's memory is the
// file, NUMA node 0, where the kernel booted; the rest is node 1, plain
// anonymous memory that the host backs with 2 MiB pages. Nothing of node 1
// but its page structures is in use when the appliance is saved, so its
// part of the migration stream is nearly all zero pages. After a restore
// the agent prefers node 1 for everything it and its commands allocate
// (proto.ResumeArgs.FreshNode).
const (
	warmFileMB  = 256
	warmFreshID = 1 // the NUMA node of the anonymous memory
)

// warmSplit returns how much of memoryMB is the saved file and how much is
// fresh anonymous memory; fresh is 0 (no second node) for small machines.
// The fresh part is a multiple of 128 MiB, the guest's memory section.
func warmSplit(memoryMB int) (fileMB, freshMB int) {
	fileMB = warmFileMB + memoryMB%128
	if memoryMB-fileMB < 128 {
		return memoryMB, 0
	}
	return fileMB, memoryMB - fileMB
}

// warmArgs are what a restorable machine has beyond the cold one: the
// guest memory in ramPath (shared while saving, private while restoring)
// and, for machines large enough, a second NUMA node of fresh memory.
func warmArgs(memoryMB, cpus int, ramPath string, share bool) []string {
	onOff := map[bool]string{true: "on", false: "off"}[share]
	fileMB, freshMB := warmSplit(memoryMB)
	file := fmt.Sprintf("memory-backend-file,id=warmram,size=%dM,mem-path=%s,share=%s", fileMB, escapeComma(ramPath), onOff)
	if freshMB == 0 {
		return []string{"-object", file, "-machine", "memory-backend=warmram"}
	}
	return []string{
		"-object", file,
		"-object", fmt.Sprintf("memory-backend-ram,id=freshram,size=%dM", freshMB),
		"-numa", fmt.Sprintf("node,nodeid=0,cpus=0-%d,memdev=warmram", cpus-1),
		"-numa", fmt.Sprintf("node,nodeid=%d,memdev=freshram", warmFreshID)}
}

// qemuIdentity names the qemu binary exactly enough for the snapshot key:
// a different or upgraded qemu cannot load another's state.
func (q *QEMU) qemuIdentity() (string, error) {
	path, err := exec.LookPath(q.binary())
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
		Memory, Ports, CPUs                                       int
		Network                                                   bool
		Devices                                                   []string
	}{warmFormat, ident, app.Key, spec.Kernel, spec.Initramfs, spec.Accel, spec.Append,
		spec.MemoryMB, hotplugPorts, spec.cpus(), spec.Network, warmArgs(spec.MemoryMB, spec.cpus(), "RAM", false)})
	sum := sha256.Sum256(key)
	return filepath.Join(app.Dir, "snapshot-"+hex.EncodeToString(sum[:8])), nil
}

// SnapshotInfo describes the saved appliance (a directory holding the
// device state and the guest memory) for `appliance info`; size is the
// disk space it uses.
func SnapshotInfo(app *Appliance, memoryMB int, network bool) (path string, size int64, err error) {
	q := &QEMU{}
	accel, _ := ResolveAccel(context.Background(), app.Kernel.Image)
	spec := MachineSpec{Kernel: app.Kernel.Image, Initramfs: app.Initramfs, MemoryMB: memoryMB,
		Accel: accel, Network: network, Append: kernelCmdline}
	path, err = q.snapshotFile(app, spec)
	if err != nil {
		return "", 0, err
	}
	size, err = snapshotUsage(path)
	return path, size, err
}

// snapshotUsage is the disk space of a snapshot directory's files (the RAM
// file is sparse).
func snapshotUsage(dir string) (int64, error) {
	var total int64
	for _, n := range []string{snapshotState, snapshotRAM} {
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join(dir, n), &st); err != nil {
			return 0, &os.PathError{Op: "stat", Path: filepath.Join(dir, n), Err: err}
		}
		total += st.Blocks * 512
	}
	return total, nil
}

// removeLegacySnapshots deletes state files of the first snapshot format
// (one migration stream holding the memory, ~120 MB each).
// Also what an interrupted save or removal left behind.
func removeLegacySnapshots(appDir string) {
	old, _ := filepath.Glob(filepath.Join(appDir, "snapshot-*.state"))
	for _, p := range old {
		os.Remove(p)
	}
	for _, pat := range []string{"snapshot-*.partial-*", "snapshot-*.gone-*"} {
		left, _ := filepath.Glob(filepath.Join(appDir, pat))
		for _, p := range left {
			if fi, err := os.Stat(p); err == nil && time.Since(fi.ModTime()) > 10*time.Minute {
				os.RemoveAll(p)
			}
		}
	}
}

// removeSnapshot deletes a snapshot directory. It is renamed away first, so
// a concurrent start sees either the whole snapshot or none; restores that
// already opened its files keep them.
func removeSnapshot(dir string) {
	gone := fmt.Sprintf("%s.gone-%d-%d", dir, os.Getpid(), time.Now().UnixNano())
	if err := os.Rename(dir, gone); err == nil {
		os.RemoveAll(gone)
	}
}

// saveSnapshot boots the appliance with no disk, waits for the agent, and
// saves the machine to path.
func (q *QEMU) saveSnapshot(ctx context.Context, spec MachineSpec, path string) error {
	dir, err := PrivateDir("save")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	// Written next to its final place, then renamed into it whole.
	tmp, err := os.MkdirTemp(filepath.Dir(path), filepath.Base(path)+".partial-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	spec.Dir, spec.Disks = dir, nil
	// Only this boot's command line: the key (snapshotFile) is the runs'.
	spec.Append += " " + proto.PreloadArg
	m, err := q.launch(spec, warmArgs(spec.MemoryMB, spec.cpus(), filepath.Join(tmp, snapshotRAM), true))
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
	if err := startSave(mon, filepath.Join(tmp, snapshotState)); err != nil {
		return err
	}
	r := raw.NewMonitor(mon)
	deadline := time.Now().Add(60 * time.Second)
	for {
		info, err := r.QueryMigrate()
		if err != nil {
			return err
		}
		status := raw.MigrationStatusNone
		if info.Status != nil {
			status = *info.Status
		}
		switch status {
		case raw.MigrationStatusCompleted:
			// The RAM file is complete once qemu has stopped the guest.
			m.Kill()
			<-m.done
			for _, n := range []string{snapshotState, snapshotRAM} {
				if err := syncFile(filepath.Join(tmp, n)); err != nil {
					return err
				}
			}
			if err := os.Rename(tmp, path); err != nil && !errors.Is(err, fs.ErrExist) && !errors.Is(err, syscall.ENOTEMPTY) {
				return err
			} // else another start saved it first: use that one
			return nil
		case raw.MigrationStatusFailed, raw.MigrationStatusCancelled:
			desc := ""
			if info.ErrorDesc != nil {
				desc = *info.ErrorDesc
			}
			return fmt.Errorf("saving the appliance: migration %s: %s", status, desc)
		}
		if time.Now().After(deadline) {
			return errors.New("saving the appliance: migration did not finish in 60s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startSave stops the guest and starts saving its device state to
// statePath; the guest memory is the shared RAM file, left out.
func startSave(mon qmp.Monitor, statePath string) error {
	r := raw.NewMonitor(mon)
	bandwidth := int64(16 << 30) // the default cap (128 MiB/s) makes saving slow for nothing
	for _, step := range []struct {
		name string
		run  func() error
	}{
		{"migrate-set-parameters", func() error {
			return r.MigrateSetParameters(&raw.MigrateSetParameters{MaxBandwidth: &bandwidth})
		}},
		{"migrate-set-capabilities x-ignore-shared", func() error { return setIgnoreShared(mon) }},
		{"stop", r.Stop},
		{"migrate", func() error { return r.Migrate("exec:cat > "+shellQuote(statePath), nil, nil, nil) }},
	} {
		if err := step.run(); err != nil {
			return fmt.Errorf("saving the appliance: %s: %w", step.name, err)
		}
	}
	return nil
}

// startIncoming starts loading the saved device state from uri into a
// machine started with -incoming defer and the RAM file as its memory.
func startIncoming(mon qmp.Monitor, uri string) error {
	if err := setIgnoreShared(mon); err != nil {
		return fmt.Errorf("restoring the appliance: migrate-set-capabilities x-ignore-shared: %w", err)
	}
	if err := raw.NewMonitor(mon).MigrateIncoming(uri); err != nil {
		return fmt.Errorf("restoring the appliance: migrate-incoming: %w", err)
	}
	return nil
}

// restore starts qemu from the saved state and hot-plugs spec's disks.
func (q *QEMU) restore(ctx context.Context, spec MachineSpec, path string) (*qemuMachine, error) {
	disks := spec.Disks
	if len(disks) > hotplugPorts {
		return nil, fmt.Errorf("%d disks: only %d hot-plug slots", len(disks), hotplugPorts)
	}
	spec.Disks = nil
	// Both files are opened through the directory, so a snapshot replaced
	// meanwhile cannot pair one save's state with another's memory.
	state, ram, err := openSnapshot(path, spec.MemoryMB)
	if err != nil {
		return nil, err
	}
	defer state.Close()
	defer ram.Close()
	// Passed as fds 3 and 4. x-ignore-shared must be on before the stream
	// is read, hence -incoming defer and migrate-incoming below.
	m, err := q.launch(spec, append(warmArgs(spec.MemoryMB, spec.cpus(), "/dev/fd/4", false), "-incoming", "defer"), state, ram)
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
	if err := startIncoming(mon, "fd:3"); err != nil {
		return nil, err
	}
	r := raw.NewMonitor(mon)
	// The VM runs by itself once the incoming migration is loaded.
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := r.QueryStatus()
		if err != nil {
			return nil, m.explain(err)
		}
		if st.Status == raw.RunStateRunning {
			break
		}
		if st.Status == raw.RunStatePostmigrate || st.Status == raw.RunStatePaused {
			if err := r.Cont(); err != nil {
				return nil, err
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("restored VM still %q after 20s", st.Status)
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
		file, format := diskNodes(abs, d.Format, fmt.Sprintf("file%d", i), fmt.Sprintf("disk%d", i), d.ReadOnly, "unmap")
		dev := virtioBlk{Driver: "virtio-blk-pci", Drive: format.NodeName, Serial: fmt.Sprintf("imgbake%d", i),
			Bus: fmt.Sprintf("rp%d", i), ID: fmt.Sprintf("vd%d", i)}
		if err := hotplugDisk(mon, file, format, dev); err != nil {
			return nil, fmt.Errorf("hot-plugging %s: %w", d.Path, err)
		}
	}
	m.portsUsed = len(disks)
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

// openSnapshot opens a snapshot's state and RAM files, checking that the
// RAM file has the size of the machine's file-backed memory (qemu would map
// past its end).
func openSnapshot(dir string, memoryMB int) (state, ram *os.File, err error) {
	fileMB, _ := warmSplit(memoryMB)
	d, err := os.Open(dir)
	if err != nil {
		return nil, nil, err
	}
	defer d.Close()
	open := func(name string, flags int) (*os.File, error) {
		fd, err := unix.Openat(int(d.Fd()), name, flags|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: filepath.Join(dir, name), Err: err}
		}
		return os.NewFile(uintptr(fd), filepath.Join(dir, name)), nil
	}
	if state, err = open(snapshotState, unix.O_RDONLY); err != nil {
		return nil, nil, err
	}
	// Read-write only because qemu opens its mem-path so; the mapping is
	// private, nothing is ever written to the file.
	if ram, err = open(snapshotRAM, unix.O_RDWR); err != nil {
		state.Close()
		return nil, nil, err
	}
	sfi, err1 := state.Stat()
	rfi, err2 := ram.Stat()
	switch {
	case err1 != nil || err2 != nil:
		err = errors.Join(err1, err2)
	case sfi.Size() == 0:
		err = fmt.Errorf("%s is empty", state.Name())
	case rfi.Size() != int64(fileMB)<<20:
		err = fmt.Errorf("%s has %d bytes, want %d MiB", ram.Name(), rfi.Size(), fileMB)
	}
	if err != nil {
		state.Close()
		ram.Close()
		return nil, nil, err
	}
	return state, ram, nil
}

// syncFile flushes a file to disk, so a crash cannot leave a snapshot whose
// memory is half written.
func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
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
