package proto

import "strings"

// TypeLUKS is the Filesystem.Type of a LUKS container (blkid's name).
const TypeLUKS = "crypto_LUKS"

// ModulesCrypt is the module group of dm-crypt and its ciphers, loaded
// when a LUKS volume is opened.
const ModulesCrypt = "crypt"

// LUKSKey is a passphrase for LUKS volumes, as --key gives it. It travels
// only in MountArgs/ProbeArgs over the agent channel: never on a command
// line, in the environment or in a log.
type LUKSKey struct {
	// Selector picks the volumes: "all", a device (/dev/vda3; the
	// /dev/sdX names of the original machine are mapped as in fstab) or
	// a LUKS UUID.
	Selector string `json:"selector"`
	// Passphrase is the key itself ([]byte: sent base64-encoded, and the
	// agent can wipe its copy).
	Passphrase []byte `json:"passphrase"`
}

// String never shows the passphrase, so a key printed by mistake leaks nothing.
func (k LUKSKey) String() string { return k.Selector + ":key:<hidden>" }

// LUKSVolume is a LUKS container found on the disks.
type LUKSVolume struct {
	Device  string `json:"device"` // the container, /dev/vda3
	UUID    string `json:"uuid"`
	Version int    `json:"version"`
	// Mapping is the opened volume, /dev/mapper/luks-UUID; empty while
	// it is locked.
	Mapping string `json:"mapping,omitempty"`
	// Problem says why it is locked: no key given, the key is wrong, an
	// unsupported cipher, ...
	Problem string `json:"problem,omitempty"`
	// NeedsKey: locked for want of a (right) key, so asking for one helps.
	NeedsKey bool `json:"needs_key,omitempty"`
}

// LUKSMapperName is the device-mapper name of an opened LUKS volume, the
// one systemd-cryptsetup and Debian's installer use without a crypttab name.
func LUKSMapperName(uuid string) string { return "luks-" + strings.ToLower(uuid) }
