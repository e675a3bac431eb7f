package appliance

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/digitalocean/go-qemu/qmp"
	"github.com/digitalocean/go-qemu/qmp/raw"
)

// fakeMonitor records the commands sent and answers each with the next
// reply (default: an empty return).
type fakeMonitor struct {
	sent    []string
	replies []string
	fail    string // a command that gets a QMP error
}

func (f *fakeMonitor) Connect() error    { return nil }
func (f *fakeMonitor) Disconnect() error { return nil }
func (f *fakeMonitor) Events(context.Context) (<-chan qmp.Event, error) {
	return nil, qmp.ErrEventsNotSupported
}

func (f *fakeMonitor) Run(cmd []byte) ([]byte, error) {
	f.sent = append(f.sent, string(cmd))
	var c struct{ Execute string }
	_ = json.Unmarshal(cmd, &c)
	if c.Execute == f.fail {
		return nil, errors.New("injected")
	}
	if len(f.replies) > 0 {
		r := f.replies[0]
		f.replies = f.replies[1:]
		return []byte(r), nil
	}
	return []byte(`{"return":{}}`), nil
}

// sameCommands compares the commands sent with want as JSON values (key
// order and an empty "arguments" do not matter).
func sameCommands(t *testing.T, sent, want []string) {
	t.Helper()
	norm := func(s string) any {
		var v map[string]any
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if a, ok := v["arguments"].(map[string]any); ok && len(a) == 0 {
			delete(v, "arguments")
		}
		return v
	}
	if len(sent) != len(want) {
		t.Fatalf("sent %d commands, want %d:\n%q", len(sent), len(want), sent)
	}
	for i := range sent {
		if g, w := norm(sent[i]), norm(want[i]); !reflect.DeepEqual(g, w) {
			t.Errorf("command %d:\n got %s\nwant %s", i, sent[i], want[i])
		}
	}
}

// The commands are the ones imgbake sent as JSON literals before it used
// go-qemu's typed API.
func TestQMPSaveCommands(t *testing.T) {
	f := &fakeMonitor{}
	if err := startSave(f, "/tmp/x y/state"); err != nil {
		t.Fatal(err)
	}
	sameCommands(t, f.sent, []string{
		`{"execute":"migrate-set-parameters","arguments":{"max-bandwidth":17179869184}}`,
		`{"execute":"migrate-set-capabilities","arguments":{"capabilities":[{"capability":"x-ignore-shared","state":true}]}}`,
		`{"execute":"stop"}`,
		`{"execute":"migrate","arguments":{"uri":"exec:cat > '/tmp/x y/state'"}}`,
	})

	f = &fakeMonitor{fail: "stop"}
	if err := startSave(f, "/s"); err == nil || len(f.sent) != 3 {
		t.Errorf("a failed stop: %v after %d commands", err, len(f.sent))
	}
}

func TestQMPRestoreCommands(t *testing.T) {
	f := &fakeMonitor{}
	if err := startIncoming(f, "fd:3"); err != nil {
		t.Fatal(err)
	}
	sameCommands(t, f.sent, []string{
		`{"execute":"migrate-set-capabilities","arguments":{"capabilities":[{"capability":"x-ignore-shared","state":true}]}}`,
		`{"execute":"migrate-incoming","arguments":{"uri":"fd:3"}}`,
	})
}

func TestQMPHotplugCommands(t *testing.T) {
	f := &fakeMonitor{}
	file, format := diskNodes("/d/disk.qcow2", "qcow2", "file1", "disk1", false, "unmap")
	if err := hotplugDisk(f, file, format, virtioBlk{Driver: "virtio-blk-pci", Drive: "disk1", Serial: "imgbake1", Bus: "rp1", ID: "vd1"}); err != nil {
		t.Fatal(err)
	}
	sameCommands(t, f.sent, []string{
		`{"execute":"blockdev-add","arguments":{"driver":"file","filename":"/d/disk.qcow2","node-name":"file1","read-only":false,"discard":"unmap"}}`,
		`{"execute":"blockdev-add","arguments":{"driver":"qcow2","file":"file1","node-name":"disk1","read-only":false,"discard":"unmap"}}`,
		`{"execute":"device_add","arguments":{"driver":"virtio-blk-pci","drive":"disk1","serial":"imgbake1","bus":"rp1","id":"vd1"}}`,
	})

	// The data disk: read-only, no discard.
	f = &fakeMonitor{}
	file, format = diskNodes("/s/data.disk", "raw", "data2-file", "data2", true, "")
	if err := hotplugDisk(f, file, format, virtioBlk{Driver: "virtio-blk-pci", Drive: "data2", Serial: "ser", Bus: "rp2", ID: "data2-dev"}); err != nil {
		t.Fatal(err)
	}
	sameCommands(t, f.sent, []string{
		`{"execute":"blockdev-add","arguments":{"driver":"file","filename":"/s/data.disk","node-name":"data2-file","read-only":true}}`,
		`{"execute":"blockdev-add","arguments":{"driver":"raw","file":"data2-file","node-name":"data2","read-only":true}}`,
		`{"execute":"device_add","arguments":{"driver":"virtio-blk-pci","drive":"data2","serial":"ser","bus":"rp2","id":"data2-dev"}}`,
	})

	f = &fakeMonitor{fail: "device_add"}
	if err := hotplugDisk(f, file, format, virtioBlk{}); err == nil {
		t.Error("a failed device_add is no error")
	}
}

// Replies as QEMU 7.2 sends them decode into go-qemu's types (its schema
// is older: unknown members must not break decoding).
func TestQMPReplies(t *testing.T) {
	f := &fakeMonitor{replies: []string{
		`{"return": {"expected-downtime": 300, "status": "active", "setup-time": 1, "total-time": 12, "ram": {"total": 269254656, "postcopy-requests": 0, "dirty-sync-count": 1, "multifd-bytes": 0, "pages-per-second": 0, "downtime-bytes": 0, "page-size": 4096, "remaining": 0, "postcopy-bytes": 0, "mbps": 0, "transferred": 0, "dirty-sync-missed-zero-copy": 0, "precopy-bytes": 0, "duplicate": 0, "dirty-pages-rate": 0, "skipped": 0, "normal-bytes": 0, "normal": 0}}}`,
		`{"return": {"status": "completed", "setup-time": 1, "downtime": 40, "total-time": 60, "ram": {"total": 269254656, "mbps": 71.3, "page-size": 4096}}}`,
		`{"return": {"status": "failed", "error-desc": "Unable to write to command: Broken pipe"}}`,
		`{"return": {}}`,
		`{"return": {"status": "postmigrate", "singlestep": false, "running": false}}`,
		`{"return": {"status": "running", "running": true}}`,
	}}
	r := raw.NewMonitor(f)
	for _, want := range []raw.MigrationStatus{raw.MigrationStatusActive, raw.MigrationStatusCompleted, raw.MigrationStatusFailed} {
		info, err := r.QueryMigrate()
		if err != nil || info.Status == nil || *info.Status != want {
			t.Fatalf("query-migrate: %+v, %v; want %s", info, err, want)
		}
		if want == raw.MigrationStatusFailed && (info.ErrorDesc == nil || *info.ErrorDesc == "") {
			t.Error("no error-desc")
		}
	}
	if info, err := r.QueryMigrate(); err != nil || info.Status != nil {
		t.Errorf("query-migrate before any migration: %+v, %v", info, err)
	}
	for _, want := range []raw.RunState{raw.RunStatePostmigrate, raw.RunStateRunning} {
		if st, err := r.QueryStatus(); err != nil || st.Status != want {
			t.Errorf("query-status: %+v, %v; want %s", st, err, want)
		}
	}
}
