package appliance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/imgbake/imgbake/appliance/luks"
	"github.com/imgbake/imgbake/appliance/proto"
)

// MaxDirEntries bounds what ReadDir accepts from the agent.
const MaxDirEntries = 1 << 20

// ReadDir lists a directory of the image (a final symlink is followed inside
// the image), sorted by name. Each entry carries lstat attributes.
func (s *Session) ReadDir(ctx context.Context, path string) ([]proto.DirEntry, error) {
	lw := &dirLineWriter{}
	var res proto.ReadDirResult
	err := s.call(ctx, proto.OpReadDir, proto.PathArgs{Path: path}, nil, dataTo(lw), &res)
	if err != nil {
		return nil, err
	}
	if err := lw.finish(); err != nil {
		return nil, err
	}
	if len(lw.entries) != res.Count {
		return nil, fmt.Errorf("readdir %s: the agent announced %d entries and sent %d", path, res.Count, len(lw.entries))
	}
	sort.Slice(lw.entries, func(i, j int) bool { return lw.entries[i].Name < lw.entries[j].Name })
	return lw.entries, nil
}

// dirLineWriter decodes the JSON lines of a listing as they arrive.
type dirLineWriter struct {
	buf     []byte
	entries []proto.DirEntry
}

func (w *dirLineWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		if err := w.line(w.buf[:i]); err != nil {
			return 0, err
		}
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) > 1<<20 {
		return 0, errors.New("readdir: an entry longer than 1 MiB")
	}
	return len(p), nil
}

func (w *dirLineWriter) line(b []byte) error {
	if len(w.entries) >= MaxDirEntries {
		return fmt.Errorf("readdir: more than %d entries", MaxDirEntries)
	}
	var e proto.DirEntry
	if err := json.Unmarshal(b, &e); err != nil {
		return fmt.Errorf("readdir: bad entry from the agent: %w", err)
	}
	if e.RawName != nil {
		e.Name, e.RawName = string(e.RawName), nil
	}
	if e.RawTarget != nil {
		e.Target, e.RawTarget = string(e.RawTarget), nil
	}
	if e.Name == "" || e.Name == "." || e.Name == ".." || strings.ContainsAny(e.Name, "/\x00") {
		return fmt.Errorf("readdir: the agent sent an impossible name %q", e.Name)
	}
	w.entries = append(w.entries, e)
	return nil
}

func (w *dirLineWriter) finish() error {
	if len(bytes.TrimSpace(w.buf)) > 0 {
		return w.line(w.buf)
	}
	return nil
}

// Probe lists the appliance's block devices and their filesystems without
// mounting anything.
func (s *Session) Probe(ctx context.Context) ([]proto.Filesystem, error) {
	var res proto.ProbeResult
	err := s.call(ctx, proto.OpProbe, proto.ProbeArgs{Disks: s.disks}, nil, nil, &res)
	return res.Filesystems, err
}

// ProbeWith is Probe with LUKS keys, returning the LUKS volumes and LVM
// volume groups too.
func (s *Session) ProbeWith(ctx context.Context, args proto.ProbeArgs) (*proto.ProbeResult, error) {
	var res proto.ProbeResult
	if args.Disks == 0 {
		args.Disks = s.disks
	}
	if err := s.call(ctx, proto.OpProbe, args, nil, nil, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// FSUsage reports the size and usage of every mounted filesystem.
func (s *Session) FSUsage(ctx context.Context) ([]proto.FSUsage, error) {
	var res proto.FSUsageResult
	err := s.call(ctx, proto.OpFSUsage, nil, nil, nil, &res)
	return res.Filesystems, err
}

// FstabCheck resolves the image's /etc/fstab against the devices found.
func (s *Session) FstabCheck(ctx context.Context) (*proto.FstabReport, error) {
	var res proto.FstabReport
	if err := s.call(ctx, proto.OpFstabCheck, nil, nil, nil, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// ReplayLog mounts an unmounted device read-write and unmounts it, so the
// kernel replays its journal or log.
func (s *Session) ReplayLog(ctx context.Context, device, fstype string) error {
	var res proto.ChangeResult
	return s.call(ctx, proto.OpReplayLog, proto.ReplayLogArgs{Device: device, Type: fstype}, nil, nil, &res)
}

// ListOS reports every filesystem of the mounted image that holds an
// operating system root (multi-boot images).
func (s *Session) ListOS(ctx context.Context) (*proto.ListOSResult, error) {
	var res proto.ListOSResult
	if err := s.call(ctx, proto.OpListOS, nil, nil, nil, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// LUKSHeader reads the header copies and active key slot areas of a LUKS
// container the last probe reported, so the host can recover its volume
// key (luks.NewSparse reads them back). The agent sends at most
// luks.MaxMaterial bytes; more, or bytes that do not match the extents it
// names, is an error.
func (s *Session) LUKSHeader(ctx context.Context, device string) (*proto.LUKSHeaderResult, []byte, error) {
	var res proto.LUKSHeaderResult
	var data []byte
	out := func(f proto.Frame) error {
		if f.Type != proto.TData {
			return nil
		}
		if len(data)+len(f.Payload) > luks.MaxMaterial {
			return fmt.Errorf("the LUKS header of %s is larger than %d bytes", device, luks.MaxMaterial)
		}
		data = append(data, f.Payload...)
		return nil
	}
	if err := s.call(ctx, proto.OpLUKSHeader, proto.LUKSHeaderArgs{Device: device}, nil, out, &res); err != nil {
		return nil, nil, err
	}
	return &res, data, nil
}
