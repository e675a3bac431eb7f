package bake

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/imgbake/imgbake/appliance"
	"github.com/imgbake/imgbake/appliance/proto"
)

// Key opens LUKS volumes: --key SELECTOR:key:PASSPHRASE or
// SELECTOR:file:FILE, SELECTOR being "all", a device (/dev/sda3) or a LUKS
// UUID, as virt-customize spells it. Passphrase is never printed
// (String hides it) and reaches the appliance only over its channel.
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

func protoKeys(keys []Key) []proto.LUKSKey {
	out := make([]proto.LUKSKey, len(keys))
	for i, k := range keys {
		out[i] = proto.LUKSKey{Selector: k.Selector, Passphrase: bytes.Clone(k.Passphrase)}
	}
	return out
}

// promptKeys asks o.KeyPrompt for a passphrase of every LUKS volume no
// key opens yet, and returns the keys with those added.
func promptKeys(ctx context.Context, sess *appliance.Session, o Options) ([]Key, error) {
	keys := o.Keys
	if o.KeyPrompt == nil {
		return keys, nil
	}
	res, err := sess.ProbeWith(ctx, proto.ProbeArgs{Keys: protoKeys(keys)})
	if err != nil {
		return nil, err
	}
	for _, v := range res.LUKS {
		if v.Mapping != "" || !v.NeedsKey {
			continue
		}
		pass, err := o.KeyPrompt(v.Device, v.UUID, v.Problem)
		if err != nil {
			return nil, Classify(ErrUsage, fmt.Errorf("reading the passphrase of %s: %w", v.Device, err))
		}
		if pass == nil {
			continue
		}
		keys = append(keys, Key{Selector: v.UUID, Passphrase: pass})
	}
	return keys, nil
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
