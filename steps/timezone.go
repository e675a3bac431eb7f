package steps

import (
	"context"
	"regexp"
	"strings"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/recipes"
	"go.yaml.in/yaml/v3"
)

// Timezone points /etc/localtime at /usr/share/zoneinfo/NAME (and writes
// /etc/timezone on Debian-family images).
type Timezone struct {
	Name string // e.g. "Europe/Berlin", "UTC", "Etc/GMT+5"
}

func init() {
	register(Kind{Name: "timezone", Idempotent: true, Decode: decodeTimezone,
		Example: `timezone: Europe/Berlin                # /etc/localtime -> /usr/share/zoneinfo/Europe/Berlin (+ /etc/timezone on Debian)`,
		Apply: func(ctx context.Context, env Env, st recipes.Step) (fsops.Result, error) {
			return fsops.Timezone(ctx, env.Session, st.Op.(*Timezone).Name)
		},
	})
}

func (*Timezone) Kind() string       { return "timezone" }
func (t *Timezone) Describe() string { return "timezone: " + t.Name }

var zoneName = regexp.MustCompile(`^[A-Za-z0-9_+-][A-Za-z0-9_+.-]*(/[A-Za-z0-9_+-][A-Za-z0-9_+.-]*)*$`)

func decodeTimezone(d *recipes.Decoder, n *yaml.Node) recipes.Op {
	name, ok := d.Str("timezone", n)
	if !ok {
		return nil
	}
	if !zoneName.MatchString(name) || strings.Contains(name, "..") {
		d.Errorf(n, `timezone: %s is not a time zone name like "Europe/Berlin" or "UTC"`, recipes.Quote(name))
	}
	return &Timezone{Name: name}
}
