package proto

import (
	"fmt"
	"strings"

	"github.com/imgbake/imgbake/appliance/luks"
)

// TypeLUKS is the Filesystem.Type of a LUKS container (blkid's name).
const TypeLUKS = "crypto_LUKS"

// ModulesCrypt is the module group of dm-crypt and its ciphers, loaded
// when a LUKS volume is opened.
const ModulesCrypt = "crypt"

// LUKSVolumeKey opens one LUKS volume: the host ran the key derivation
// with the --key passphrases over the volume's header (OpLUKSHeader) and
// sends only the recovered volume key. The passphrase never reaches the
// appliance. It travels only in MountArgs/ProbeArgs over the agent
// channel: never on a command line, in the environment or in a log, and
// both ends wipe it after use.
type LUKSVolumeKey struct {
	// Device and UUID name the volume as the probe reported it; the
	// agent opens a volume only when both match.
	Device string `json:"device"`
	UUID   string `json:"uuid"`
	// Key is the volume key ([]byte: sent base64-encoded, and the agent
	// can wipe its copy). The agent checks it against the header's
	// digest before mapping anything. Empty: the host could not open the
	// volume, and Problem says why (a wrong passphrase, ...).
	Key     []byte `json:"key,omitempty"`
	Problem string `json:"problem,omitempty"`
}

// String never shows the key, so a key printed by mistake leaks nothing.
func (k LUKSVolumeKey) String() string { return k.Device + " (" + k.UUID + "):<hidden>" }

// WipeVolumeKeys clears the keys once they were used.
func WipeVolumeKeys(keys []LUKSVolumeKey) {
	for i := range keys {
		clear(keys[i].Key)
	}
}

// LUKSKeyHint is how a user opens one volume.
func LUKSKeyHint(dev, uuid string) string {
	return fmt.Sprintf("open it with --key %s:key:PASSPHRASE or --key %s:file:FILE (or --key all:...)", dev, uuid)
}

// OpLUKSHeader reads the header of one LUKS volume: LUKSHeaderArgs in,
// the bytes of Extents one after the other as TData, LUKSHeaderResult.
const OpLUKSHeader = "luks_header"

// LUKSHeaderArgs names a LUKS container the last probe reported.
type LUKSHeaderArgs struct {
	Device string `json:"device"`
}

// LUKSHeaderResult describes the data streamed: the header copies and
// the areas of the active key slots (luks.Header.Material), at most
// luks.MaxMaterial bytes.
type LUKSHeaderResult struct {
	UUID    string        `json:"uuid"`
	Version int           `json:"version"`
	Extents []luks.Extent `json:"extents"`
}

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
