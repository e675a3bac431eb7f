package appliance

import (
	"context"
	"errors"
	"net"

	"github.com/imgbake/imgbake/appliance/proto"
)

// AgentVersion is the version of imgbake and its agent.
const AgentVersion = proto.Version

// Disk is one image attached to the appliance. Format is always explicit:
// QEMU must never probe it.
type Disk struct {
	Path     string
	Format   string // "raw" or "qcow2"
	ReadOnly bool
}

// MachineSpec is everything a backend needs to start the appliance VM.
type MachineSpec struct {
	Kernel    string
	Initramfs string
	Append    string // kernel command line
	MemoryMB  int
	CPUs      int // vCPUs; 0 is applianceCPUs
	Disks     []Disk
	Dir       string // private 0700 directory for sockets and logs
	Accel     string // "kvm" or "tcg"
	Network   bool   // user-mode networking (for package steps)
}

// Machine is a running appliance VM as a backend exposes it.
type Machine interface {
	// Channel is the connected agent channel (virtio-serial port).
	Channel() net.Conn
	// Done is closed when the VM has exited and been reaped.
	Done() <-chan struct{}
	// Err is the VM's exit status once Done is closed.
	Err() error
	// Kill stops the VM at once and reaps it.
	Kill()
	// ConsoleLog is the path of the kernel console log.
	ConsoleLog() string
	// Diagnostics is what the hypervisor itself reported (qemu's stderr),
	// for error messages when the VM fails.
	Diagnostics() string
}

// Backend starts appliance VMs: the embedded QEMU backend by default, a
// libvirt one later, both behind this interface.
type Backend interface {
	Name() string
	Start(ctx context.Context, spec MachineSpec) (Machine, error)
}

// ErrApplianceDied means the VM went away while we were talking to it.
var ErrApplianceDied = errors.New("the appliance VM exited unexpectedly")

// cpus is the vCPU count the spec asks for.
func (s MachineSpec) cpus() int {
	if s.CPUs > 0 {
		return s.CPUs
	}
	return applianceCPUs
}
