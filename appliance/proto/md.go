package proto

// TypeMDMember is the Filesystem.Type of an md RAID member device (blkid's
// name for it); its UUID is the array's and its Label the array's name.
const TypeMDMember = "linux_raid_member"

// ModulesMD and ModulesMDParity are the module groups of md RAID: the
// core with linear, raid0, raid1 and raid10, and raid4/5/6 (raid456 with
// its async_tx helpers, and xor and raid6_pq, which benchmark their
// algorithms as they load), loaded only for an array of a parity level.
const (
	ModulesMD       = "md"
	ModulesMDParity = "md-parity"
)
