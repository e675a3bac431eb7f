package steps

import (
	"context"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/recipes"
	"go.yaml.in/yaml/v3"
)

// SELinuxRelabel schedules a full SELinux relabel at the next boot
// (/.autorelabel) when the image has SELinux enabled; otherwise it does
// nothing.
type SELinuxRelabel struct{}

func init() {
	register(Kind{Name: "selinux_relabel", Idempotent: true, Decode: decodeSELinuxRelabel,
		Example: `selinux_relabel: true                 # touch /.autorelabel if SELinux is enabled; otherwise nothing`,
		Apply: func(ctx context.Context, env Env, st recipes.Step) (fsops.Result, error) {
			return fsops.SELinuxRelabel(ctx, env.Session)
		},
	})
}

func (*SELinuxRelabel) Kind() string     { return "selinux_relabel" }
func (*SELinuxRelabel) Describe() string { return "selinux_relabel" }

func decodeSELinuxRelabel(d *recipes.Decoder, n *yaml.Node) recipes.Op {
	d.TrueOnly("selinux_relabel", n)
	return &SELinuxRelabel{}
}
