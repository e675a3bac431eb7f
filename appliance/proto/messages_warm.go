package proto

// OpResume tells an agent restored from a snapshot what it cannot know:
// the time, and fresh entropy (a restored VM would otherwise repeat the
// random state it was saved with).
const OpResume = "resume"

// ResumeArgs are sent right after a restored agent is ready.
type ResumeArgs struct {
	UnixNano int64  `json:"unix_nano"`
	Entropy  []byte `json:"entropy"`
	// FreshNode, when not 0, is the NUMA node of memory the host backs
	// afresh (not the saved memory file): the agent and every command it
	// starts prefer it, so their first writes to memory are cheap.
	FreshNode int `json:"fresh_node,omitempty"`
}
