package proto

// Freezing the image's filesystems, so that the disk under them is
// consistent while the host snapshots it (a step-layer cache).
const (
	// OpFreeze syncs and freezes (FIFREEZE) every filesystem mounted from
	// the image, deepest first; FreezeResult names them.
	OpFreeze = "freeze"
	// OpThaw thaws what OpFreeze froze (FITHAW), in mount order.
	OpThaw = "thaw"
)

// FreezeResult lists the mountpoints frozen or thawed, relative to the image.
type FreezeResult struct {
	Mountpoints []string `json:"mountpoints"`
}
