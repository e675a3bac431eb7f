package bake

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/imgbake/imgbake/appliance"
	"github.com/imgbake/imgbake/appliance/luks"
	"github.com/imgbake/imgbake/appliance/proto"
)

// Key opens LUKS volumes: --key SELECTOR:key:PASSPHRASE or
// SELECTOR:file:FILE, SELECTOR being "all", a device (/dev/sda3) or a LUKS
// UUID, as virt-customize spells it. Passphrase is never printed
// (String hides it) and never reaches the appliance: the host recovers
// the volume key with it (unlockLUKS).
type Key struct {
	Selector   string
	Passphrase []byte
}

func (k Key) String() string { return k.Selector + ":<hidden>" }

// ParseKey reads a --key argument. A file: key is the file's first line,
// without its newline, as virt-customize reads it.
func ParseKey(spec string) (Key, error) {
	bad := func(format string, args ...any) (Key, error) {
		return Key{}, Classify(ErrUsage, fmt.Errorf("--key: "+format, args...))
	}
	sel, rest, ok := strings.Cut(spec, ":")
	kind, val, ok2 := strings.Cut(rest, ":")
	if kind == "clevis" && !ok2 {
		return bad("%s:clevis: Clevis/Tang network-bound keys are not supported; give a passphrase with %s:key:PASSPHRASE or %s:file:FILE", sel, sel, sel)
	}
	if !ok || !ok2 || sel == "" {
		return bad("expected SELECTOR:key:PASSPHRASE or SELECTOR:file:FILE (SELECTOR: all, a device such as /dev/sda3, or a LUKS UUID)")
	}
	switch kind {
	case "key":
		return Key{Selector: sel, Passphrase: []byte(val)}, nil
	case "file":
		data, err := os.ReadFile(val)
		if err != nil {
			return bad("%s:file:%s: %v", sel, val, err)
		}
		line, _, _ := bytes.Cut(data, []byte("\n"))
		pass := bytes.Clone(line)
		clear(data)
		return Key{Selector: sel, Passphrase: pass}, nil
	}
	return bad("%s:%s:...: unknown key type %q (use key, or file; clevis is not supported)", sel, kind, kind)
}

// LUKS volumes are unlocked on the host: the agent reports each locked
// volume and streams its header and key slots (Session.LUKSHeader); the
// key derivation, key slot decryption and digest check run here, where
// argon2 may have the GiB a real installer's key slot asks for and the
// CPU is not emulated; only the recovered volume key goes to the agent,
// which checks it against the header again and maps the volume. The
// passphrase never enters the appliance.

// unlockLUKS probes the devices and recovers the volume key of every
// locked LUKS volume the keys (or, on a terminal, the passphrases typed)
// open, probing again after each round that opened one: volumes inside
// the opened ones (LVM on LUKS holding LUKS again) appear only then. It
// returns the keys to send with Mount or Probe (the caller wipes them
// with proto.WipeVolumeKeys) and the last probe's result. Without keys
// or a prompt there is nothing to do: it returns nil, nil.
func unlockLUKS(ctx context.Context, sess *appliance.Session, o Options, logf func(string, ...any)) ([]proto.LUKSVolumeKey, *proto.ProbeResult, error) {
	if len(o.Keys) == 0 && o.KeyPrompt == nil {
		return nil, nil, nil
	}
	var vkeys []proto.LUKSVolumeKey
	done := map[string]bool{}
	for {
		pr, err := sess.ProbeWith(ctx, proto.ProbeArgs{VolumeKeys: vkeys})
		if err != nil {
			proto.WipeVolumeKeys(vkeys)
			return nil, nil, err
		}
		opened := false
		for _, v := range pr.LUKS {
			id := v.Device + "\x00" + strings.ToLower(v.UUID)
			if v.Mapping != "" || !v.NeedsKey || done[id] {
				continue
			}
			done[id] = true
			vk, ok, err := unlockVolume(ctx, sess, pr.Filesystems, v, o, logf)
			if err != nil {
				proto.WipeVolumeKeys(vkeys)
				return nil, nil, err
			}
			if ok {
				vkeys = append(vkeys, vk)
				opened = opened || len(vk.Key) > 0
			}
		}
		if !opened {
			return vkeys, pr, nil
		}
	}
}

// unlockVolume recovers the volume key of v with the keys that select it,
// then with passphrases typed at the prompt. ok is false when nothing was
// tried (the agent then says no key was given); a volume that stays
// locked gets a Problem naming the keys that are wrong.
func unlockVolume(ctx context.Context, sess *appliance.Session, fss []proto.Filesystem, v proto.LUKSVolume, o Options, logf func(string, ...any)) (proto.LUKSVolumeKey, bool, error) {
	vk := proto.LUKSVolumeKey{Device: v.Device, UUID: v.UUID}
	fs := proto.Filesystem{Device: v.Device, Type: proto.TypeLUKS, UUID: v.UUID}
	if i := slices.IndexFunc(fss, func(f proto.Filesystem) bool { return f.Device == v.Device }); i >= 0 {
		fs = fss[i]
	}
	var cands []Key
	for _, k := range o.Keys {
		if keySelects(k.Selector, fs, v.UUID) {
			cands = append(cands, k)
		}
	}
	if len(cands) == 0 && o.KeyPrompt == nil {
		return vk, false, nil
	}
	hint := proto.LUKSKeyHint(v.Device, v.UUID)
	res, data, err := sess.LUKSHeader(ctx, v.Device)
	if err != nil {
		if ctx.Err() != nil {
			return vk, false, ctx.Err()
		}
		vk.Problem = fmt.Sprintf("cannot be opened: reading its header: %v", err)
		return vk, true, nil
	}
	u := &unlocker{device: v.Device, logf: logf, memKiB: hostMemAvailableKiB()}
	defer u.wipe(data)
	sp, err := luks.NewSparse(res.Extents, data)
	if err == nil {
		u.h, err = luks.Read(sp)
	}
	if err == nil && !strings.EqualFold(u.h.UUID, v.UUID) {
		err = fmt.Errorf("the header read has UUID %s, the probe found %s", u.h.UUID, v.UUID)
	}
	if err != nil {
		vk.Problem = fmt.Sprintf("cannot be opened: unreadable LUKS header: %v", err)
		return vk, true, nil
	}
	u.sp = sp
	var wrong []string
	for _, k := range cands {
		key, err := u.try(ctx, k.Passphrase, "--key "+k.Selector+":...")
		if err == nil {
			vk.Key = key
			return vk, true, nil
		}
		if ctx.Err() != nil {
			return vk, false, ctx.Err()
		}
		if !errors.Is(err, luks.ErrWrongKey) {
			vk.Problem = fmt.Sprintf("cannot be opened: %v", err)
			return vk, true, nil
		}
		wrong = append(wrong, "--key "+k.Selector+":...")
	}
	if len(wrong) > 0 {
		vk.Problem = fmt.Sprintf("the key given for it (%s) is wrong: no key slot opens with it; %s", strings.Join(wrong, ", "), hint)
	} else {
		vk.Problem = "encrypted, no key given: " + hint
	}
	// As cryptsetup does: three tries at the prompt.
	for tries := 0; o.KeyPrompt != nil && tries < 3; tries++ {
		pass, err := o.KeyPrompt(v.Device, v.UUID, vk.Problem)
		if err != nil {
			return vk, false, Classify(ErrUsage, fmt.Errorf("reading the passphrase of %s: %w", v.Device, err))
		}
		if pass == nil {
			break
		}
		key, err := u.try(ctx, pass, "the passphrase typed")
		clear(pass)
		if err == nil {
			vk.Key, vk.Problem = key, ""
			return vk, true, nil
		}
		if ctx.Err() != nil {
			return vk, false, ctx.Err()
		}
		if !errors.Is(err, luks.ErrWrongKey) {
			vk.Problem = fmt.Sprintf("cannot be opened: %v", err)
			return vk, true, nil
		}
		vk.Problem = "the passphrase typed for it is wrong: no key slot opens with it; " + hint
	}
	return vk, true, nil
}

// unlocker tries passphrases on one volume's header.
type unlocker struct {
	device string
	h      *luks.Header
	sp     *luks.Sparse
	memKiB int
	logf   func(string, ...any)
	// busy: a KDF abandoned on cancellation still reads sp; it wipes the
	// header data itself when it ends.
	busy bool
}

type unlockResult struct {
	key  []byte
	slot *luks.Keyslot
	err  error
}

// try runs the KDF and key slot decryption with pass, and logs which slot
// opened and how long it took. Cancelling ctx returns at once; the
// computation, which cannot be interrupted, ends in the background.
func (u *unlocker) try(ctx context.Context, pass []byte, what string) ([]byte, error) {
	own := bytes.Clone(pass)
	start := time.Now()
	ch := make(chan unlockResult, 1)
	go func() {
		key, slot, err := u.h.UnlockWithSlot(u.sp, own, u.memKiB)
		clear(own)
		ch <- unlockResult{key, slot, err}
	}()
	select {
	case r := <-ch:
		took := time.Since(start).Round(time.Millisecond)
		if r.err != nil {
			if errors.Is(r.err, luks.ErrWrongKey) {
				u.logf("LUKS volume %s (%s): %s opens no key slot (%s)", u.device, u.h.UUID, what, took)
			}
			return nil, r.err
		}
		u.logf("LUKS volume %s (%s): key slot %s (%s) opened with %s on the host in %s", u.device, u.h.UUID, r.slot.ID, kdfSummary(r.slot.KDF), what, took)
		return r.key, nil
	case <-ctx.Done():
		u.busy = true
		sp := u.sp
		go func() {
			r := <-ch
			clear(r.key)
			sp.Wipe()
		}()
		return nil, ctx.Err()
	}
}

// wipe clears the header data unless an abandoned KDF still reads it.
func (u *unlocker) wipe(data []byte) {
	if !u.busy {
		clear(data)
	}
}

func kdfSummary(k luks.KDF) string {
	if k.Type == "pbkdf2" {
		return fmt.Sprintf("pbkdf2-%s, %d iterations", k.Hash, k.Iterations)
	}
	return fmt.Sprintf("%s, %d MiB, %d iterations, %d threads", k.Type, k.MemoryKiB>>10, k.Iterations, k.Threads)
}

// hostMemAvailableKiB bounds what argon2 may use here: the host's
// available memory less a margin (0: unknown, no bound). A header asking
// for more fails with a message instead of swapping the host to death.
func hostMemAvailableKiB() int {
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
			return max(n-256<<10, 1)
		}
	}
	return 0
}

// keySelects reports whether a --key selector names the container fs
// with LUKS UUID uuid: "all", the UUID, or a device name as fstab would
// give it (/dev/sda3 of the original machine, /dev/VG/LV, by-uuid, ...).
func keySelects(sel string, fs proto.Filesystem, uuid string) bool {
	dev, byUUID := strings.CutPrefix(sel, "/dev/disk/by-uuid/")
	switch {
	case sel == "all":
		return true
	case strings.EqualFold(strings.TrimPrefix(sel, "UUID="), uuid), byUUID && strings.EqualFold(dev, uuid):
		return true
	case !strings.HasPrefix(sel, "/dev/"):
		return false
	case fs.LV != "" && (sel == "/dev/"+fs.VG+"/"+fs.LV || sel == "/dev/disk/by-id/dm-name-"+proto.DMName(fs.VG, fs.LV)):
		return true
	}
	if v, ok := strings.CutPrefix(sel, "/dev/disk/by-partuuid/"); ok {
		return fs.PartUUID != "" && strings.EqualFold(v, fs.PartUUID)
	}
	if v, ok := strings.CutPrefix(sel, "/dev/disk/by-partlabel/"); ok {
		return fs.PartLabel != "" && v == fs.PartLabel
	}
	if v, ok := strings.CutPrefix(sel, "/dev/disk/by-label/"); ok {
		return fs.Label != "" && v == fs.Label
	}
	return sel == fs.Device || guestDevice(sel) == fs.Device
}

// guestDevice is the appliance's name of a disk device of the original
// machine: /dev/sda3, /dev/xvda3 and /dev/hda3 are /dev/vda3 here.
func guestDevice(dev string) string {
	name := strings.TrimPrefix(dev, "/dev/")
	for _, p := range []string{"xvd", "sd", "hd", "vd"} {
		if rest, ok := strings.CutPrefix(name, p); ok {
			return "/dev/vd" + rest
		}
	}
	return dev
}

// TerminalKeyPrompt asks for a passphrase on the terminal tty without
// echo (readPassword is term.ReadPassword on it); an empty answer skips
// the volume. One question at a time: `bake` opens images in parallel.
func TerminalKeyPrompt(w *os.File, readPassword func() ([]byte, error)) func(dev, uuid, problem string) ([]byte, error) {
	var mu sync.Mutex
	return func(dev, uuid, problem string) ([]byte, error) {
		mu.Lock()
		defer mu.Unlock()
		if strings.Contains(problem, "wrong") {
			fmt.Fprintf(w, "imgbake: %s: the key given is wrong\n", dev)
		}
		fmt.Fprintf(w, "Enter the passphrase of LUKS volume %s (%s), empty to skip: ", dev, uuid)
		pass, err := readPassword()
		fmt.Fprintln(w)
		if err != nil {
			return nil, err
		}
		if len(pass) == 0 {
			return nil, nil
		}
		return pass, nil
	}
}
