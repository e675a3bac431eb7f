package steps

import (
	"context"
	"os"
	"path/filepath"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/recipes"
	"go.yaml.in/yaml/v3"
)

// Firstboot installs a command or a host script to run once at the image's
// first boot, the way virt-customize --firstboot does: a systemd oneshot
// unit runs the scripts in a directory and moves each to a done directory.
type Firstboot struct {
	Command string // a shell command, or
	Script  string // absolute host path of a script
}

func init() {
	register(Kind{Name: "firstboot", Idempotent: true, Decode: decodeFirstboot,
		Example: `firstboot: {command: "ssh-keygen -A"}   # or script: ./setup.sh; runs once at first boot (systemd oneshot unit)`,
		Apply: func(ctx context.Context, env Env, st recipes.Step) (fsops.Result, error) {
			op := st.Op.(*Firstboot)
			if op.Script != "" {
				b, err := os.ReadFile(op.Script)
				if err != nil {
					return fsops.Result{}, err
				}
				return fsops.Firstboot(ctx, env.Session, filepath.Base(op.Script), b)
			}
			return fsops.Firstboot(ctx, env.Session, op.Command, fsops.FirstbootCommand(op.Command))
		},
	})
}

func (*Firstboot) Kind() string { return "firstboot" }
func (f *Firstboot) Describe() string {
	if f.Script != "" {
		return "firstboot: " + filepath.Base(f.Script)
	}
	return "firstboot: " + recipes.FirstLine(f.Command)
}

func decodeFirstboot(d *recipes.Decoder, n *yaml.Node) recipes.Op {
	var f Firstboot
	var first string
	one := func(key string, v *yaml.Node) {
		if first != "" {
			d.Errorf(v, "firstboot.%s: give only one of command, script (%s is already set)", key, first)
		}
		first = key
	}
	if d.Fields("firstboot", n,
		recipes.Field{Key: "command", Decode: func(v *yaml.Node) {
			if c, ok := d.Str("firstboot.command", v); ok {
				switch {
				case c == "" || recipes.FirstLine(c) == "":
					d.Errorf(v, "firstboot.command: command is empty")
				case containsNUL(c):
					d.Errorf(v, "firstboot.command: command contains a NUL byte")
				}
				f.Command = c
			}
			one("command", v)
		}},
		recipes.Field{Key: "script", Decode: func(v *yaml.Node) { f.Script = d.ExistingHostPath("firstboot.script", v); one("script", v) }},
	) && first == "" {
		d.Errorf(n, "firstboot: needs one of command, script")
	}
	return &f
}

func containsNUL(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return true
		}
	}
	return false
}
