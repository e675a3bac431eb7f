package recipes

import (
	"path/filepath"

	"go.yaml.in/yaml/v3"
)

// Firstboot installs a command or a host script to run once at the image's
// first boot, the way virt-customize --firstboot does: a systemd oneshot
// unit runs the scripts in a directory and moves each to a done directory.
type Firstboot struct {
	Command string // a shell command, or
	Script  string // absolute host path of a script
}

func init() { register("firstboot", decodeFirstboot) }

func (*Firstboot) Kind() string { return "firstboot" }
func (f *Firstboot) Describe() string {
	if f.Script != "" {
		return "firstboot: " + filepath.Base(f.Script)
	}
	return "firstboot: " + firstLine(f.Command)
}

func decodeFirstboot(d *decoder, n *yaml.Node) Op {
	var f Firstboot
	var first string
	one := func(key string, v *yaml.Node) {
		if first != "" {
			d.errorf(v, "firstboot.%s: give only one of command, script (%s is already set)", key, first)
		}
		first = key
	}
	if d.fields("firstboot", n,
		field{key: "command", decode: func(v *yaml.Node) {
			if c, ok := d.str("firstboot.command", v); ok {
				switch {
				case c == "" || firstLine(c) == "":
					d.errorf(v, "firstboot.command: command is empty")
				case containsNUL(c):
					d.errorf(v, "firstboot.command: command contains a NUL byte")
				}
				f.Command = c
			}
			one("command", v)
		}},
		field{key: "script", decode: func(v *yaml.Node) { f.Script = d.existingHostPath("firstboot.script", v); one("script", v) }},
	) && first == "" {
		d.errorf(n, "firstboot: needs one of command, script")
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
