package proto

// OpNetworkUp brings up the appliance's user-mode network (on first use:
// most recipes never need it), and from then on every command in the image
// has it and resolves through the appliance's resolver, until shutdown.
const OpNetworkUp = "network_up"

// NetworkArgs are OpNetworkUp's arguments (none: bring it up now).
type NetworkArgs struct {
	// Lazy only marks the network as wanted: it comes up at the first
	// command run in the image (most sessions' first requests need none).
	Lazy bool `json:"lazy,omitempty"`
}

// NetworkResult describes the appliance's network once up.
type NetworkResult struct {
	Interface string `json:"interface"`
	Address   string `json:"address"`
	Gateway   string `json:"gateway"`
	Resolver  string `json:"resolver"` // the DNS server to put in the image's resolv.conf
	SetupMS   int64  `json:"setup_ms,omitempty"`
}
