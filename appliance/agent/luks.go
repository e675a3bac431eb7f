package agent

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/imgbake/imgbake/appliance/fstab"
	"github.com/imgbake/imgbake/appliance/luks"
	"github.com/imgbake/imgbake/appliance/proto"
)

// LUKS volumes are opened by the agent itself, as LVM volumes are: the
// header is read and the volume key recovered in Go (appliance/luks), and
// the payload mapped with a dm-crypt table through the device-mapper
// ioctls. The mapping is named luks-UUID; it is removed with the other
// device-mapper devices before power-off (deactivateLVM).

// openLUKS opens the LUKS containers among fss for which a key is given,
// and describes every container found.
func (a *Agent) openLUKS(fss []proto.Filesystem, keys []proto.LUKSKey) []proto.LUKSVolume {
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
func (a *Agent) openNewLUKS(fss []proto.Filesystem, keys []proto.LUKSKey) bool {
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

// keyFlagHint is how a user opens one volume.
func keyFlagHint(dev, uuid string) string {
	return fmt.Sprintf("open it with --key %s:key:PASSPHRASE or --key %s:file:FILE (or --key all:...)", dev, uuid)
}

func (a *Agent) openLUKSVolume(fs proto.Filesystem, keys []proto.LUKSKey) proto.LUKSVolume {
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
	var matching []proto.LUKSKey
	for _, k := range keys {
		if keySelects(k.Selector, fs, h.UUID) {
			matching = append(matching, k)
		}
	}
	if len(matching) == 0 {
		vol.Problem = "encrypted, no key given: " + keyFlagHint(fs.Device, h.UUID)
		vol.NeedsKey = true
		return vol
	}
	if !a.pid1 {
		vol.Problem = "not opened outside the appliance"
		return vol
	}
	var key []byte
	var wrong []string
	for _, k := range matching {
		key, err = h.Unlock(f, k.Passphrase, memAvailableKiB())
		if err == nil {
			break
		}
		if !errors.Is(err, luks.ErrWrongKey) {
			vol.Problem = fmt.Sprintf("cannot be opened: %v", err)
			return vol
		}
		wrong = append(wrong, "--key "+k.Selector+":...")
	}
	if key == nil {
		vol.Problem = fmt.Sprintf("the key given for it (%s) is wrong: no key slot opens with it; %s", strings.Join(wrong, ", "), keyFlagHint(fs.Device, h.UUID))
		vol.NeedsKey = true
		return vol
	}
	defer clear(key)
	node, err := a.mapLUKS(fs.Device, h, key)
	if err != nil {
		vol.Problem = err.Error()
		return vol
	}
	vol.Mapping = node
	return vol
}

// keySelects reports whether a --key selector names the container fs
// with LUKS UUID uuid: "all", the UUID, or a device name as fstab would
// give it (/dev/sda3 of the original machine, /dev/VG/LV, ...).
func keySelects(sel string, fs proto.Filesystem, uuid string) bool {
	switch {
	case sel == "all":
		return true
	case strings.EqualFold(strings.TrimPrefix(sel, "UUID="), uuid):
		return true
	case strings.HasPrefix(sel, "/dev/"):
		_, ok := resolveSpec(sel, []proto.Filesystem{fs})
		return ok
	}
	return false
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

// memAvailableKiB is what argon2 may use: the appliance's available memory
// less a margin for the agent and the page cache (0: unknown, no bound).
func memAvailableKiB() int {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "MemAvailable:"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				return 0
			}
			return max(n-48<<10, 1)
		}
	}
	return 0
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

// wipeKeys clears the passphrases of a request once they were used.
func wipeKeys(keys []proto.LUKSKey) {
	for i := range keys {
		clear(keys[i].Passphrase)
	}
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
