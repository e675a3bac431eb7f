package proto

// Trimming free space, so that an exported image holds only used blocks.
const (
	// OpTrim discards the free space of every filesystem mounted from the
	// image (FITRIM); a filesystem that cannot trim has its free space
	// overwritten with zeros instead, which the export then leaves out.
	OpTrim = "trim"
)

// TrimResult says what happened to each mounted filesystem, in mount order.
type TrimResult struct {
	Filesystems []TrimmedFS `json:"filesystems"`
}

// TrimmedFS is one filesystem's trim.
type TrimmedFS struct {
	Mountpoint string `json:"mountpoint"` // relative to the image: "/", "/boot"
	Type       string `json:"type,omitempty"`
	Method     string `json:"method"`          // TrimFITRIM, TrimZeroed or TrimSkipped
	Bytes      uint64 `json:"bytes,omitempty"` // what FITRIM reported discarding, or the zeros written
	Why        string `json:"why,omitempty"`   // for TrimSkipped
}

// Trim methods.
const (
	TrimFITRIM  = "fitrim"
	TrimZeroed  = "zeroed"
	TrimSkipped = "skipped"
)
