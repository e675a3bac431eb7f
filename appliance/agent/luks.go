package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/imgbake/imgbake/appliance/fstab"
	"github.com/imgbake/imgbake/appliance/luks"
	"github.com/imgbake/imgbake/appliance/proto"
)

// LUKS volumes are opened in two halves. The host does the expensive
// part: it reads each locked volume's header and key slots through
// OpLUKSHeader, runs the key derivation (argon2 with a GiB of memory is
// beyond a TCG appliance) with the --key passphrases and sends back only
// the volume key (proto.LUKSVolumeKey). The agent checks that key against
// its own parse of the header's digest, so a wrong key never maps
// garbage, and maps the payload with a dm-crypt table through the
// device-mapper ioctls. The mapping is named luks-UUID; it is removed
// with the other device-mapper devices before power-off (deactivateLVM).

// openLUKS opens the LUKS containers among fss for which a volume key is
// given, and describes every container found.
func (a *Agent) openLUKS(fss []proto.Filesystem, keys []proto.LUKSVolumeKey) []proto.LUKSVolume {
	var vols []proto.LUKSVolume
	for _, fs := range fss {
		if fs.Type != proto.TypeLUKS {
			continue
		}
		vols = append(vols, a.openLUKSVolume(fs, keys))
	}
	return vols
}

// openNewLUKS opens the containers among fss not looked at yet, adds
// them to a.luksVols and reports whether one was mapped.
func (a *Agent) openNewLUKS(fss []proto.Filesystem, keys []proto.LUKSVolumeKey) bool {
	known := map[string]bool{}
	for _, v := range a.luksVols {
		known[v.Device] = true
	}
	var todo []proto.Filesystem
	for _, fs := range fss {
		if fs.Type == proto.TypeLUKS && !known[fs.Device] {
			todo = append(todo, fs)
		}
	}
	mapped := false
	for _, v := range a.openLUKS(todo, keys) {
		a.luksVols = append(a.luksVols, v)
		mapped = mapped || v.Mapping != ""
	}
	return mapped
}

func (a *Agent) openLUKSVolume(fs proto.Filesystem, keys []proto.LUKSVolumeKey) proto.LUKSVolume {
	vol := proto.LUKSVolume{Device: fs.Device, UUID: fs.UUID}
	f, err := os.Open(fs.Device)
	if err != nil {
		vol.Problem = err.Error()
		return vol
	}
	defer f.Close()
	h, err := luks.Read(f)
	if err != nil {
		vol.Problem = fmt.Sprintf("unreadable LUKS header: %v", err)
		return vol
	}
	vol.Version, vol.UUID = h.Version, h.UUID
	// Mapped by an earlier probe of this run (the key was checked then):
	// later probes, with or without the key, see it open.
	if node, ok := a.dmMapped(proto.LUKSMapperName(h.UUID)); ok {
		vol.Mapping = node
		return vol
	}
	i := slices.IndexFunc(keys, func(k proto.LUKSVolumeKey) bool {
		return k.Device == fs.Device && strings.EqualFold(k.UUID, h.UUID)
	})
	switch {
	case i < 0:
		vol.Problem = "encrypted, no key given: " + proto.LUKSKeyHint(fs.Device, h.UUID)
		vol.NeedsKey = true
		return vol
	case len(keys[i].Key) == 0:
		vol.Problem = keys[i].Problem
		if vol.Problem == "" {
			vol.Problem = "not opened: " + proto.LUKSKeyHint(fs.Device, h.UUID)
		}
		vol.NeedsKey = true
		return vol
	}
	if err := h.CheckKey(keys[i].Key); err != nil {
		vol.Problem = fmt.Sprintf("not opened: the volume key sent for it is refused: %v", err)
		return vol
	}
	if !a.pid1 {
		vol.Problem = "not opened outside the appliance"
		return vol
	}
	node, err := a.mapLUKS(fs.Device, h, keys[i].Key)
	if err != nil {
		vol.Problem = err.Error()
		return vol
	}
	vol.Mapping = node
	return vol
}

// dmMapped reports whether the agent created device-mapper device name.
func (a *Agent) dmMapped(name string) (string, bool) {
	a.lvmMu.Lock()
	defer a.lvmMu.Unlock()
	if slices.Contains(a.dmActive, name) {
		return proto.MapperPath(name), true
	}
	return "", false
}

// handleLUKSHeader streams the header copies and active key slot areas
// of one LUKS container found by the last probe, for the host to unlock.
func (a *Agent) handleLUKSHeader(_ context.Context, st *stream, raw json.RawMessage) (any, error) {
	args, err := decode[proto.LUKSHeaderArgs](raw)
	if err != nil {
		return nil, err
	}
	if !slices.ContainsFunc(a.luksVols, func(v proto.LUKSVolume) bool { return v.Device == args.Device }) {
		return nil, fmt.Errorf("%s: not a LUKS volume found by the last probe", args.Device)
	}
	f, err := os.Open(args.Device)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h, err := luks.Read(f)
	if err != nil {
		return nil, fmt.Errorf("%s: unreadable LUKS header: %w", args.Device, err)
	}
	material, ext, err := h.MaterialReader(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", args.Device, err)
	}
	if _, err := io.CopyBuffer(frameWriter{st, proto.TData}, material, make([]byte, proto.ChunkSize)); err != nil {
		return nil, fmt.Errorf("%s: reading its header: %w", args.Device, unwrapErrno(err))
	}
	if err := st.closeWrite(); err != nil {
		return nil, err
	}
	return proto.LUKSHeaderResult{UUID: h.UUID, Version: h.Version, Extents: ext}, nil
}

// mapLUKS creates the dm-crypt mapping of the payload.
func (a *Agent) mapLUKS(dev string, h *luks.Header, key []byte) (string, error) {
	a.ensureFSModules(proto.ModulesDM)
	a.ensureFSModules(proto.ModulesCrypt)
	if _, err := os.Stat(dmControl); err != nil {
		return "", fmt.Errorf("not opened: no device-mapper (%s: %v; is dm_mod in the appliance?)", dmControl, unwrapErrno(err))
	}
	var st unix.Stat_t
	if err := unix.Stat(dev, &st); err != nil {
		return "", err
	}
	size, err := deviceSize(dev)
	if err != nil {
		return "", err
	}
	length := h.PayloadSize
	if length == 0 {
		length = size - h.PayloadOffset
	}
	if length <= 0 || h.PayloadOffset+length > size {
		return "", fmt.Errorf("the payload (offset %d, %d bytes) does not fit the device (%d bytes)", h.PayloadOffset, length, size)
	}
	length -= length % int64(h.PayloadSectorSize)
	params := h.DMTable(key, fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev)))
	payload := dmSecretPayload(uint64(length/512), "crypt", params)
	clear(params)
	defer clear(payload)
	name := proto.LUKSMapperName(h.UUID)
	uuid := fmt.Sprintf("CRYPT-LUKS%d-%s-%s", h.Version, strings.ReplaceAll(strings.ToLower(h.UUID), "-", ""), name)
	ro := a.readOnly || deviceReadOnly(dev)
	node, err := a.dmActivatePayload(name, uuid, payload, 1, ro, unix.DM_SECURE_DATA_FLAG)
	if err != nil {
		return "", fmt.Errorf("not opened: %w", err)
	}
	return node, nil
}

// dmSecretPayload lays out one target like dmTablePayload, from a byte
// slice the caller can wipe.
func dmSecretPayload(length uint64, typ string, params []byte) []byte {
	specSize := int(unsafe.Sizeof(unix.DmTargetSpec{}))
	n := (specSize + len(params) + 1 + 7) &^ 7
	b := make([]byte, n)
	spec := (*unix.DmTargetSpec)(unsafe.Pointer(&b[0]))
	spec.Length = length
	spec.Next = uint32(n)
	copy(spec.Target_type[:len(spec.Target_type)-1], typ)
	copy(b[specSize:], params)
	return b
}

func deviceSize(dev string) (int64, error) {
	f, err := os.Open(dev)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return f.Seek(0, 2)
}

// markLUKS names the container of every opened volume among fss.
func markLUKS(fss []proto.Filesystem, vols []proto.LUKSVolume) {
	for i := range fss {
		for _, v := range vols {
			if v.Mapping != "" && fss[i].Device == v.Mapping {
				fss[i].LUKS = v.Device
			}
		}
	}
}

// readCrypttab maps the mapping names of the image's /etc/crypttab
// (Debian: "sda3_crypt UUID=... none luks") to the volumes opened here
// under luks-UUID, so fstab's /dev/mapper/sda3_crypt resolves.
func readCrypttab(rootfd int, fss []proto.Filesystem, vols []proto.LUKSVolume) map[string]string {
	data, err := readFileAt(rootfd, "/etc/crypttab", 1<<20)
	if err != nil {
		return nil
	}
	out := map[string]string{}
	for _, line := range bytes.Split(data, []byte("\n")) {
		f := strings.Fields(string(line))
		if len(f) < 2 || strings.HasPrefix(f[0], "#") {
			continue
		}
		name, src := fstab.Unescape(f[0]), fstab.Unescape(f[1])
		cont, ok := resolveSpec(src, fss)
		if !ok {
			continue
		}
		for _, v := range vols {
			if v.Mapping != "" && v.Device == cont.Device && name != proto.LUKSMapperName(v.UUID) {
				out[name] = v.Mapping
			}
		}
	}
	return out
}

// cryptSpec rewrites an fstab spec naming a crypttab mapping to the
// device it was opened as.
func (a *Agent) cryptSpec(spec string) string {
	for _, p := range []string{proto.MapperDir + "/", "/dev/disk/by-id/dm-name-"} {
		if name, ok := strings.CutPrefix(spec, p); ok {
			if dev, ok := a.cryptAliases[name]; ok {
				return dev
			}
		}
	}
	return spec
}

// luksTried is what NoOSError lists for a LUKS container.
func luksTried(v proto.LUKSVolume) string {
	what := fmt.Sprintf("%s: LUKS%d volume %s", v.Device, v.Version, v.UUID)
	switch {
	case v.Mapping != "":
		return what + " opened as " + v.Mapping
	case v.NeedsKey:
		return what + ": locked" // NoOSError.Locked says why and how to open it
	}
	return what + ": " + v.Problem
}

// lockedLUKS describes the volumes left closed, for NoOSError.
func lockedLUKS(vols []proto.LUKSVolume) []string {
	var out []string
	for _, v := range vols {
		if v.Mapping == "" && v.NeedsKey {
			out = append(out, fmt.Sprintf("%s: LUKS%d volume %s: %s", v.Device, v.Version, v.UUID, v.Problem))
		}
	}
	return out
}
