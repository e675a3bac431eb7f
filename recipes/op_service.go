package recipes

import (
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Service enables, disables, masks or unmasks a systemd unit offline.
type Service struct {
	Name    string // full unit name; ".service" is added when no type is given
	Enabled *bool
	Masked  *bool
}

func init() { register("service", decodeService) }

func (*Service) Kind() string       { return "service" }
func (s *Service) Describe() string { return "service: " + s.Name }

var (
	unitName   = regexp.MustCompile(`^[A-Za-z0-9:_.\\-]+(@[A-Za-z0-9:_.\\-]*)?$`)
	unitSuffix = regexp.MustCompile(`\.(service|socket|timer|path|mount|automount|swap|target|slice|scope|device)$`)
)

func decodeService(d *decoder, n *yaml.Node) Op {
	var s Service
	var enabledNode *yaml.Node
	if !d.fields("service", n,
		field{key: "name", required: true, decode: func(v *yaml.Node) {
			name, ok := d.str("service.name", v)
			if !ok {
				return
			}
			if !unitSuffix.MatchString(name) {
				name += ".service"
			}
			if !unitName.MatchString(name) || len(name) > 255 || strings.HasPrefix(name, "@") || strings.HasPrefix(name, ".") {
				d.errorf(v, "service.name: %s is not a systemd unit name like \"ssh\" or \"fstrim.timer\"", quote(name))
			}
			s.Name = name
		}},
		field{key: "enabled", decode: func(v *yaml.Node) { s.Enabled, enabledNode = new(d.boolean("service.enabled", v)), v }},
		field{key: "masked", decode: func(v *yaml.Node) { s.Masked = new(d.boolean("service.masked", v)) }},
	) {
		return nil
	}
	switch {
	case s.Enabled == nil && s.Masked == nil:
		d.errorf(n, "service: needs enabled or masked (or both)")
	case s.Enabled != nil && *s.Enabled && s.Masked != nil && *s.Masked:
		d.errorf(enabledNode, "service.enabled: a masked unit cannot be enabled; drop enabled or set masked: false")
	}
	return &s
}
