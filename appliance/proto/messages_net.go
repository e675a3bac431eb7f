package proto

// OpNetworkUp brings up the appliance's user-mode network (on first use:
// most recipes never need it).
const OpNetworkUp = "network_up"

// NetworkResult describes the appliance's network once up.
type NetworkResult struct {
	Interface string `json:"interface"`
	Address   string `json:"address"`
	Gateway   string `json:"gateway"`
	Resolver  string `json:"resolver"` // the DNS server to put in the image's resolv.conf
	SetupMS   int64  `json:"setup_ms,omitempty"`
}
