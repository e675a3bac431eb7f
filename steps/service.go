package steps

import (
	"context"
	"regexp"
	"strings"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/recipes"
	"go.yaml.in/yaml/v3"
)

// Service enables, disables, masks or unmasks a systemd unit offline.
type Service struct {
	Name    string // full unit name; ".service" is added when no type is given
	Enabled *bool
	Masked  *bool
}

func init() {
	register(Kind{Name: "service", Idempotent: true, Decode: decodeService,
		Example: `service: {name: fstrim.timer, enabled: false}   # enabled / masked, offline from the unit's [Install] section`,
		Apply: func(ctx context.Context, env Env, st recipes.Step) (fsops.Result, error) {
			op := st.Op.(*Service)
			return fsops.Service(ctx, env.Session, fsops.ServiceSpec{Name: op.Name, Enabled: op.Enabled, Masked: op.Masked})
		},
	})
}

func (*Service) Kind() string       { return "service" }
func (s *Service) Describe() string { return "service: " + s.Name }

var (
	unitName   = regexp.MustCompile(`^[A-Za-z0-9:_.\\-]+(@[A-Za-z0-9:_.\\-]*)?$`)
	unitSuffix = regexp.MustCompile(`\.(service|socket|timer|path|mount|automount|swap|target|slice|scope|device)$`)
)

func decodeService(d *recipes.Decoder, n *yaml.Node) recipes.Op {
	var s Service
	var enabledNode *yaml.Node
	if !d.Fields("service", n,
		recipes.Field{Key: "name", Required: true, Decode: func(v *yaml.Node) {
			name, ok := d.Str("service.name", v)
			if !ok {
				return
			}
			if !unitSuffix.MatchString(name) {
				name += ".service"
			}
			if !unitName.MatchString(name) || len(name) > 255 || strings.HasPrefix(name, "@") || strings.HasPrefix(name, ".") {
				d.Errorf(v, "service.name: %s is not a systemd unit name like \"ssh\" or \"fstrim.timer\"", recipes.Quote(name))
			}
			s.Name = name
		}},
		recipes.Field{Key: "enabled", Decode: func(v *yaml.Node) { s.Enabled, enabledNode = new(d.Bool("service.enabled", v)), v }},
		recipes.Field{Key: "masked", Decode: func(v *yaml.Node) { s.Masked = new(d.Bool("service.masked", v)) }},
	) {
		return nil
	}
	switch {
	case s.Enabled == nil && s.Masked == nil:
		d.Errorf(n, "service: needs enabled or masked (or both)")
	case s.Enabled != nil && *s.Enabled && s.Masked != nil && *s.Masked:
		d.Errorf(enabledNode, "service.enabled: a masked unit cannot be enabled; drop enabled or set masked: false")
	}
	return &s
}
