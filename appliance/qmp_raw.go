package appliance

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/digitalocean/go-qemu/qmp"
)

// The QMP commands that go out as JSON of our own instead of through
// go-qemu's generated API (qmp/raw), each because that API, generated from
// an old QEMU schema (2.12), cannot express it. Everything else uses
// raw.NewMonitor(mon).
//
// About go-qemu's SocketMonitor, whatever sends the command: its event
// channel is unbuffered and fed by the goroutine that also reads replies,
// so once Events is called every event must be read or the next reply
// never arrives; imgbake never calls Events, and then events are dropped.
// It reads lines of at most 64 KiB (bufio.Scanner): a longer reply ends
// the monitor, so no command here may ask for a large one. Run has no
// context or deadline; only QEMU exiting ends a command that hangs: QMP
// below waits at most 5 s, the save and the restore send only commands
// QEMU answers at once and poll with deadlines of their own.

// blockdevNode is the arguments of blockdev-add (and -blockdev) for the
// two kinds of node a disk is made of: the "file" protocol node and the
// format node over it.
//
// Raw because raw.BlockdevOptionsRaw and raw.BlockdevOptionsQcow2 have no
// "file" member (the schema's base type is flattened away), and because
// every raw.BlockdevOptions member's MarshalJSON embeds its own type and
// recurses until the stack overflows: raw.Monitor.BlockdevAdd cannot
// encode any node at all.
type blockdevNode struct {
	Driver   string `json:"driver"`
	Filename string `json:"filename,omitempty"` // the file node: the host path
	File     string `json:"file,omitempty"`     // a format node: the node under it
	NodeName string `json:"node-name"`
	ReadOnly bool   `json:"read-only"`
	Discard  string `json:"discard,omitempty"`
}

// diskNodes are the file and format nodes of the disk at path (absolute).
func diskNodes(path, format, fileNode, node string, readOnly bool, discard string) (file, fmtNode blockdevNode) {
	return blockdevNode{Driver: "file", Filename: path, NodeName: fileNode, ReadOnly: readOnly, Discard: discard},
		blockdevNode{Driver: format, File: fileNode, NodeName: node, ReadOnly: readOnly, Discard: discard}
}

func blockdevAdd(mon qmp.Monitor, n blockdevNode) error {
	return runRaw(mon, "blockdev-add", n)
}

// blockdevOverlay is a qcow2 node whose backing the snapshot command sets
// (backing: null, so QEMU does not open the file the header names).
type blockdevOverlay struct {
	Driver   string  `json:"driver"`
	File     string  `json:"file"`
	NodeName string  `json:"node-name"`
	Backing  *string `json:"backing"`
}

// blockdevSnapshot makes overlay (a node without backing) the active layer
// over node. Raw like blockdev-add: the generated BlockdevSnapshot's
// arguments are fine, but keeping the block-layer commands together keeps
// their node names in one vocabulary.
func blockdevSnapshot(mon qmp.Monitor, node, overlay string) error {
	return runRaw(mon, "blockdev-snapshot", map[string]string{"node": node, "overlay": overlay})
}

// virtioBlk is the arguments of device_add for a virtio disk. Raw because
// raw.Monitor.DeviceAdd takes only driver, bus and id: no drive, no serial.
type virtioBlk struct {
	Driver string `json:"driver"` // virtio-blk-pci
	Drive  string `json:"drive"`  // the format node
	Serial string `json:"serial"`
	Bus    string `json:"bus"` // a root port, rp<N>
	ID     string `json:"id"`
}

func deviceAdd(mon qmp.Monitor, d virtioBlk) error {
	return runRaw(mon, "device_add", d)
}

// setIgnoreShared turns on the x-ignore-shared migration capability (the
// guest RAM file is not part of the stream). Raw because
// raw.MigrationCapability predates it (QEMU 4.0) and has no value for it.
func setIgnoreShared(mon qmp.Monitor) error {
	return runRaw(mon, "migrate-set-capabilities", map[string]any{
		"capabilities": []map[string]any{{"capability": "x-ignore-shared", "state": true}}})
}

// runRaw runs one command; a QMP error reply is an error (the monitor's
// Run checks it).
func runRaw(mon qmp.Monitor, execute string, args any) error {
	b, err := json.Marshal(qmp.Command{Execute: execute, Args: args})
	if err != nil {
		return err
	}
	_, err = mon.Run(b)
	return err
}

// QMP runs a monitor command without arguments, by name, for backends'
// callers that need it; its reply is returned as QEMU sent it. Raw because
// the command is the caller's, not one imgbake knows.
func (m *qemuMachine) QMP(cmd string) ([]byte, error) {
	m.qmpMu.Lock()
	mon := m.qmp
	m.qmpMu.Unlock()
	if mon == nil {
		return nil, errors.New("QMP not connected")
	}
	b, err := json.Marshal(qmp.Command{Execute: cmd})
	if err != nil {
		return nil, err
	}
	type result struct {
		b   []byte
		err error
	}
	ch := make(chan result, 1)
	go func() {
		b, err := mon.Run(b)
		ch <- result{b, err}
	}()
	select {
	case r := <-ch:
		return r.b, r.err
	case <-time.After(5 * time.Second): // go-qemu has no context support
		return nil, errors.New("QMP command timed out")
	case <-m.done:
		return nil, ErrApplianceDied
	}
}
