package recipes

import (
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Cron installs one cron job as /etc/cron.d/NAME.
type Cron struct {
	Name     string
	Schedule string // five fields, or @reboot, @daily, ...
	User     string // default root
	Command  string
}

func init() { register("cron", decodeCron) }

func (*Cron) Kind() string       { return "cron" }
func (c *Cron) Describe() string { return "cron: " + c.Name }

var (
	cronFileName  = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	cronField     = regexp.MustCompile(`^[A-Za-z0-9*/,-]+$`)
	cronShortcuts = []string{"@reboot", "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
)

func decodeCron(d *decoder, n *yaml.Node) Op {
	c := Cron{User: "root"}
	d.fields("cron", n,
		field{key: "name", required: true, decode: func(v *yaml.Node) {
			name, ok := d.str("cron.name", v)
			if ok && !cronFileName.MatchString(name) {
				d.errorf(v, "cron.name: %s may only contain letters, digits, '_' and '-' (cron ignores other file names in /etc/cron.d)", quote(name))
			}
			c.Name = name
		}},
		field{key: "schedule", required: true, decode: func(v *yaml.Node) {
			s, ok := d.str("cron.schedule", v)
			if ok && !validSchedule(s) {
				d.errorf(v, "cron.schedule: %s is not five fields (minute hour day-of-month month day-of-week) or one of %s",
					quote(s), strings.Join(cronShortcuts, ", "))
			}
			c.Schedule = strings.Join(strings.Fields(s), " ")
		}},
		field{key: "user", decode: func(v *yaml.Node) { c.User = d.account("cron.user", "user", v) }},
		field{key: "command", required: true, decode: func(v *yaml.Node) { c.Command = d.singleLine("cron.command", "command", v) }},
	)
	return &c
}

func validSchedule(s string) bool {
	f := strings.Fields(s)
	if len(f) == 1 {
		return slices.Contains(cronShortcuts, f[0])
	}
	if len(f) != 5 {
		return false
	}
	for _, x := range f {
		if !cronField.MatchString(x) {
			return false
		}
	}
	return true
}
