package recipes

import (
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Timezone points /etc/localtime at /usr/share/zoneinfo/NAME (and writes
// /etc/timezone on Debian-family images).
type Timezone struct {
	Name string // e.g. "Europe/Berlin", "UTC", "Etc/GMT+5"
}

func init() { register("timezone", decodeTimezone) }

func (*Timezone) Kind() string       { return "timezone" }
func (t *Timezone) Describe() string { return "timezone: " + t.Name }

var zoneName = regexp.MustCompile(`^[A-Za-z0-9_+-][A-Za-z0-9_+.-]*(/[A-Za-z0-9_+-][A-Za-z0-9_+.-]*)*$`)

func decodeTimezone(d *decoder, n *yaml.Node) Op {
	name, ok := d.str("timezone", n)
	if !ok {
		return nil
	}
	if !zoneName.MatchString(name) || strings.Contains(name, "..") {
		d.errorf(n, `timezone: %s is not a time zone name like "Europe/Berlin" or "UTC"`, quote(name))
	}
	return &Timezone{Name: name}
}
