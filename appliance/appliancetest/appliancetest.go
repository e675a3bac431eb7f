// Package appliancetest runs the appliance agent in-process, over a
// net.Pipe, against a host directory standing in for the mounted image, so
// host-side Session code can be tested without booting a VM:
//
//	b := appliancetest.New(root)
//	s, err := appliance.Start(ctx, appliancetest.Appliance(), appliance.WithBackend(b))
//
// The agent's Serve mode treats root as already mounted (Mount reports it
// without touching devices) and runs commands in place rather than
// chrooted. Writes chown files (to 0:0 by default), so tests that write
// need root; see Start.
package appliancetest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/imgbake/imgbake/appliance"
	"github.com/imgbake/imgbake/appliance/agent"
)

// ErrKilled is a Machine's Err after Kill.
var ErrKilled = errors.New("appliancetest: machine killed")

// ErrCrashed is a Machine's Err after Crash.
var ErrCrashed = errors.New("appliancetest: agent crashed")

// Backend starts Machines that serve Root with agent.Serve.
type Backend struct {
	Root string

	mu       sync.Mutex
	machines []*Machine
}

// New returns a backend serving root (an existing directory).
func New(root string) *Backend { return &Backend{Root: root} }

// Appliance is a minimal appliance description for appliance.Start: the
// pipe backend ignores the kernel and initramfs.
func Appliance() *appliance.Appliance {
	return &appliance.Appliance{Kernel: appliance.Kernel{Version: "appliancetest"}, Key: "appliancetest"}
}

// Name implements appliance.Backend.
func (b *Backend) Name() string { return "pipe" }

// Start implements appliance.Backend. ctx bounds only the start, as with
// QEMU; the machine runs until Kill, Crash, a shutdown request or the host
// closing its end of the channel.
func (b *Backend) Start(ctx context.Context, spec appliance.MachineSpec) (appliance.Machine, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	fi, err := os.Stat(b.Root)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("appliancetest: root %s is not a directory", b.Root)
	}
	host, guest := net.Pipe()
	actx, cancel := context.WithCancel(context.Background())
	m := &Machine{host: host, guest: guest, cancel: cancel, killed: make(chan struct{}), done: make(chan struct{})}
	if spec.Dir != "" {
		m.console = filepath.Join(spec.Dir, "console.log")
		if err := os.WriteFile(m.console, []byte("appliancetest: serving "+b.Root+"\n"), 0o600); err != nil {
			cancel()
			return nil, err
		}
	}
	go m.run(actx, b.Root)
	b.mu.Lock()
	b.machines = append(b.machines, m)
	b.mu.Unlock()
	return m, nil
}

// Machine returns the most recently started machine, or nil.
func (b *Backend) Machine() *Machine {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.machines) == 0 {
		return nil
	}
	return b.machines[len(b.machines)-1]
}

// Machine is an in-process agent; it implements appliance.Machine.
type Machine struct {
	host, guest net.Conn
	cancel      context.CancelFunc
	console     string

	killOnce sync.Once
	killed   chan struct{} // closed by Kill
	done     chan struct{}

	mu     sync.Mutex
	cause  error // ErrKilled or ErrCrashed when stopped from outside
	hungUp bool  // HangUp: the machine outlives its agent until Kill
	err    error // why the machine stopped, set before done is closed
	serve  error // what agent.Serve returned
}

func (m *Machine) run(ctx context.Context, root string) {
	err := agent.Serve(ctx, m.guest, root)
	// The agent is gone: its end of the channel goes with it, and the host
	// reads EOF as from a powered-off VM's socket. Cancelling releases
	// handlers still waiting for input.
	m.guest.Close()
	m.cancel()
	m.mu.Lock()
	m.serve = err
	hungUp := m.hungUp
	m.mu.Unlock()
	if m.console != "" {
		if f, ferr := os.OpenFile(m.console, os.O_WRONLY|os.O_APPEND, 0); ferr == nil {
			fmt.Fprintf(f, "appliancetest: agent returned %v\n", err)
			f.Close()
		}
	}
	if hungUp {
		<-m.killed
	}
	m.mu.Lock()
	switch {
	case m.cause != nil:
		m.err = m.cause
	case err != nil:
		m.err = fmt.Errorf("agent: %w", err)
	}
	m.mu.Unlock()
	close(m.done)
}

// Channel implements appliance.Machine.
func (m *Machine) Channel() net.Conn { return m.host }

// Done implements appliance.Machine: closed once agent.Serve has returned
// (after HangUp: once the machine is also killed).
func (m *Machine) Done() <-chan struct{} { return m.done }

// Err implements appliance.Machine: nil while running or after a clean
// shutdown, ErrKilled, ErrCrashed, or the agent's own error.
func (m *Machine) Err() error {
	select {
	case <-m.done:
	default:
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err
}

// ServeErr waits for the agent and returns what agent.Serve returned (nil
// after a shutdown request or a host hang-up).
func (m *Machine) ServeErr() error {
	<-m.done
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.serve
}

// Kill implements appliance.Machine: it stops the agent at once, closes
// both ends of the channel (as qemuMachine.Kill closes its socket) and
// waits until the machine is gone.
func (m *Machine) Kill() {
	m.killOnce.Do(func() {
		m.setCause(ErrKilled)
		m.host.Close()
		m.guest.Close()
		m.cancel()
		close(m.killed)
	})
	<-m.done
}

// Crash simulates the agent dying with the VM: the agent's end of the
// channel is closed with no result for any pending request, and the
// machine exits with ErrCrashed. It waits until the machine is gone.
func (m *Machine) Crash() {
	m.setCause(ErrCrashed)
	// Close before cancelling, so no handler can answer on the way out.
	m.guest.Close()
	m.cancel()
	<-m.done
}

// HangUp simulates the agent's channel failing while the VM lives on: the
// agent's end is closed, but Done stays open until Kill.
func (m *Machine) HangUp() {
	m.mu.Lock()
	m.hungUp = true
	m.mu.Unlock()
	m.guest.Close()
	m.cancel()
}

func (m *Machine) setCause(err error) {
	m.mu.Lock()
	if m.cause == nil {
		m.cause = err
	}
	m.mu.Unlock()
}

// ConsoleLog implements appliance.Machine.
func (m *Machine) ConsoleLog() string { return m.console }

// Diagnostics implements appliance.Machine.
func (m *Machine) Diagnostics() string {
	if err := m.Err(); err != nil {
		return err.Error()
	}
	return ""
}

// Start starts a session on root with the pipe backend, for tests. It skips
// the test unless running as root (the agent chowns what it writes) and
// kills the session at cleanup if the test did not close it.
func Start(tb testing.TB, root string, opts ...appliance.Option) (*appliance.Session, *Machine) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("the in-process agent chowns the files it writes: run as root")
	}
	b := New(root)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	opts = append([]appliance.Option{appliance.WithBackend(b), appliance.WithBootTimeout(10 * time.Second)}, opts...)
	s, err := appliance.Start(ctx, Appliance(), opts...)
	if err != nil {
		tb.Fatalf("starting the pipe appliance: %v", err)
	}
	m := b.Machine()
	tb.Cleanup(func() {
		s.Kill()
	})
	return s, m
}
