package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/imgbake/imgbake/appliance/proto"
)

// The appliance's network is QEMU user-mode networking: a fixed address
// plan, so no DHCP client is needed. It is brought up on first use only,
// because most recipes never touch the network and boot time matters.
const (
	guestAddr  = "10.0.2.15/24"
	gatewayIP  = "10.0.2.2"
	resolverIP = "10.0.2.3"
)

func (a *Agent) registerNetOps(s *server) {
	s.handle(proto.OpNetworkUp, a.handleNetworkUp)
}

// handleNetworkUp gives every later command in the image the network and
// the appliance's resolver (resolver.go); the interface comes up now, or
// with Lazy at the first command.
func (a *Agent) handleNetworkUp(ctx context.Context, _ *stream, raw json.RawMessage) (any, error) {
	var args proto.NetworkArgs
	if len(raw) > 0 && string(raw) != "null" {
		if err := json.Unmarshal(raw, &args); err != nil {
			return nil, err
		}
	}
	a.netMu.Lock()
	defer a.netMu.Unlock()
	a.netForCommands = true
	if a.netUp || args.Lazy {
		return a.networkResult(), nil
	}
	return a.networkUpLocked(ctx)
}

// networkUpLocked brings the interface up; netMu is held.
func (a *Agent) networkUpLocked(ctx context.Context) (proto.NetworkResult, error) {
	t := time.Now()
	loadModules(proto.ModulesNet)
	link, err := waitForEthernet(ctx, 10*time.Second)
	if err != nil {
		return proto.NetworkResult{}, err
	}
	if lo, err := netlink.LinkByName("lo"); err == nil {
		_ = netlink.LinkSetUp(lo)
	}
	addr, err := netlink.ParseAddr(guestAddr)
	if err != nil {
		return proto.NetworkResult{}, err
	}
	if err := netlink.AddrReplace(link, addr); err != nil {
		return proto.NetworkResult{}, fmt.Errorf("network: address on %s: %w", link.Attrs().Name, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return proto.NetworkResult{}, fmt.Errorf("network: bringing up %s: %w", link.Attrs().Name, err)
	}
	route := &netlink.Route{LinkIndex: link.Attrs().Index, Gw: net.ParseIP(gatewayIP)}
	if err := netlink.RouteReplace(route); err != nil {
		return proto.NetworkResult{}, fmt.Errorf("network: default route: %w", err)
	}
	a.netUp, a.netIf = true, link.Attrs().Name
	res := a.networkResult()
	res.SetupMS = time.Since(t).Milliseconds()
	return res, nil
}

// waitForEthernet returns the first non-loopback link once the virtio-net
// driver has created it.
func waitForEthernet(ctx context.Context, limit time.Duration) (netlink.Link, error) {
	deadline := time.Now().Add(limit)
	for {
		links, err := netlink.LinkList()
		if err != nil {
			return nil, fmt.Errorf("network: listing links: %w", err)
		}
		for _, l := range links {
			if l.Type() == "device" && l.Attrs().Name != "lo" && l.Attrs().Flags&net.FlagLoopback == 0 {
				return l, nil
			}
		}
		if time.Now().After(deadline) {
			if _, err := os.Stat("/sys/bus/virtio/drivers/virtio_net"); err != nil {
				return nil, errors.New("network: no network device; was the appliance started with networking? (run without --no-network)")
			}
			return nil, errors.New("network: the virtio-net device did not appear")
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
