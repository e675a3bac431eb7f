package appliance

import (
	"context"

	"github.com/imgbake/imgbake/appliance/proto"
)

// NetworkUp brings up the appliance's network (started WithNetwork); from
// then on every command in the image has it and resolves through the
// appliance's resolver (the image's resolv.conf is restored at shutdown).
func (s *Session) NetworkUp(ctx context.Context) (proto.NetworkResult, error) {
	var res proto.NetworkResult
	err := s.call(ctx, proto.OpNetworkUp, nil, nil, nil, &res)
	return res, err
}

// NetworkForCommands is NetworkUp deferred to the first command run in
// the image, so a session that never runs one pays nothing for it.
func (s *Session) NetworkForCommands(ctx context.Context) error {
	return s.call(ctx, proto.OpNetworkUp, proto.NetworkArgs{Lazy: true}, nil, nil, nil)
}
