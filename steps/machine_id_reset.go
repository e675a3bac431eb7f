package steps

import (
	"context"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/recipes"
	"go.yaml.in/yaml/v3"
)

// MachineIDReset empties /etc/machine-id so that each clone of the image
// gets its own at first boot.
type MachineIDReset struct{}

func init() {
	register(Kind{Name: "machine_id_reset", Idempotent: true, Decode: decodeMachineIDReset,
		Example: `machine_id_reset: true                # empty /etc/machine-id: each clone gets its own`,
		Apply: func(ctx context.Context, env Env, st recipes.Step) (fsops.Result, error) {
			return fsops.MachineIDReset(ctx, env.Session)
		},
	})
}

func (*MachineIDReset) Kind() string     { return "machine_id_reset" }
func (*MachineIDReset) Describe() string { return "machine_id_reset" }

func decodeMachineIDReset(d *recipes.Decoder, n *yaml.Node) recipes.Op {
	d.TrueOnly("machine_id_reset", n)
	return &MachineIDReset{}
}
