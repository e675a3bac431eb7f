package appliance

import (
	"context"

	"github.com/imgbake/imgbake/appliance/proto"
)

// NetworkUp brings up the appliance's network (started WithNetwork).
func (s *Session) NetworkUp(ctx context.Context) (proto.NetworkResult, error) {
	var res proto.NetworkResult
	err := s.call(ctx, proto.OpNetworkUp, nil, nil, nil, &res)
	return res, err
}
