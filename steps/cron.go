package steps

import (
	"context"
	"regexp"
	"slices"
	"strings"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/recipes"
	"go.yaml.in/yaml/v3"
)

// Cron installs one cron job as /etc/cron.d/NAME.
type Cron struct {
	Name     string
	Schedule string // five fields, or @reboot, @daily, ...
	User     string // default root
	Command  string
}

func init() {
	register(Kind{Name: "cron", Idempotent: true, Decode: decodeCron,
		Example: `cron: {name: backup, schedule: "30 2 * * *", user: root, command: /usr/local/bin/backup}   # /etc/cron.d/backup`,
		Apply: func(ctx context.Context, env Env, st recipes.Step) (fsops.Result, error) {
			op := st.Op.(*Cron)
			return fsops.Cron(ctx, env.Session, fsops.CronSpec{Name: op.Name, Schedule: op.Schedule, User: op.User, Command: op.Command})
		},
	})
}

func (*Cron) Kind() string       { return "cron" }
func (c *Cron) Describe() string { return "cron: " + c.Name }

var (
	cronFileName  = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	cronField     = regexp.MustCompile(`^[A-Za-z0-9*/,-]+$`)
	cronShortcuts = []string{"@reboot", "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
)

func decodeCron(d *recipes.Decoder, n *yaml.Node) recipes.Op {
	c := Cron{User: "root"}
	d.Fields("cron", n,
		recipes.Field{Key: "name", Required: true, Decode: func(v *yaml.Node) {
			name, ok := d.Str("cron.name", v)
			if ok && !cronFileName.MatchString(name) {
				d.Errorf(v, "cron.name: %s may only contain letters, digits, '_' and '-' (cron ignores other file names in /etc/cron.d)", recipes.Quote(name))
			}
			c.Name = name
		}},
		recipes.Field{Key: "schedule", Required: true, Decode: func(v *yaml.Node) {
			s, ok := d.Str("cron.schedule", v)
			if ok && !validSchedule(s) {
				d.Errorf(v, "cron.schedule: %s is not five fields (minute hour day-of-month month day-of-week) or one of %s",
					recipes.Quote(s), strings.Join(cronShortcuts, ", "))
			}
			c.Schedule = strings.Join(strings.Fields(s), " ")
		}},
		recipes.Field{Key: "user", Decode: func(v *yaml.Node) { c.User = d.Account("cron.user", "user", v) }},
		recipes.Field{Key: "command", Required: true, Decode: func(v *yaml.Node) { c.Command = d.SingleLine("cron.command", "command", v) }},
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
