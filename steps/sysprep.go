package steps

import (
	"context"
	"slices"
	"strings"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/recipes"
	"go.yaml.in/yaml/v3"
)

// Sysprep removes what makes the image one particular machine (machine
// ID, SSH host keys, logs, caches, leases, histories, ...) with the
// operations of fsops.SysprepOperations, as `imgbake sysprep` does.
type Sysprep struct {
	Selection  []string // the operations as written (virt-sysprep's --operations syntax); nil: the defaults
	Operations []string // what Selection resolves to; nil: the defaults
	Keep       []string // globs of paths no operation touches
	MachineID  string   // fsops.MachineIDEmpty or fsops.MachineIDUninitialized; "": empty
}

func init() {
	register(Kind{Name: "sysprep", Idempotent: true, Decode: decodeSysprep,
		Example: `sysprep: {operations: [defaults, -tmp-files], keep: ["/var/log/app/*"]}  # golden-image finishing as virt-sysprep; {} for the default set (imgbake sysprep --list-operations)`,
		Apply: func(ctx context.Context, env Env, st recipes.Step) (fsops.Result, error) {
			op := st.Op.(*Sysprep)
			res, err := fsops.Sysprep(ctx, env.Session, fsops.SysprepOptions{Operations: op.Operations, Keep: op.Keep, MachineID: op.MachineID})
			return res.Result, err
		},
	})
}

func (*Sysprep) Kind() string { return "sysprep" }
func (s *Sysprep) Describe() string {
	d := "sysprep"
	if s.Selection != nil {
		d += ": " + strings.Join(s.Selection, ",")
	}
	if len(s.Keep) > 0 {
		d += " (keep " + strings.Join(s.Keep, " ") + ")"
	}
	return d
}

func decodeSysprep(d *recipes.Decoder, n *yaml.Node) recipes.Op {
	var s Sysprep
	d.Fields("sysprep", n,
		recipes.Field{Key: "operations", Decode: func(v *yaml.Node) {
			allStrings := true
			items := d.StringList("sysprep.operations", v, func(ctx string, n *yaml.Node) string {
				item, ok := d.Str(ctx, n)
				allStrings = allStrings && ok
				return item
			})
			if items == nil || !allStrings {
				return // already reported
			}
			ops, err := fsops.ParseSysprepOperations(items)
			if err != nil {
				d.Errorf(v, "sysprep.operations: %v", err)
				return
			}
			// The run records its state after its last step, which would
			// bring the file back at once.
			if slices.Contains(ops, "imgbake-state") {
				d.Errorf(v, "sysprep.operations: imgbake-state cannot run as a step (the run records its state when it ends; all includes it: write all,-imgbake-state); "+
					"run `imgbake sysprep --operations defaults,imgbake-state` on the result instead")
				return
			}
			s.Selection, s.Operations = items, ops
		}},
		recipes.Field{Key: "keep", Decode: func(v *yaml.Node) {
			s.Keep = d.StringList("sysprep.keep", v, func(ctx string, n *yaml.Node) string {
				g, ok := d.Str(ctx, n)
				if ok {
					if err := fsops.CheckSysprepKeep(g); err != nil {
						d.Errorf(n, "%s: %v", ctx, err)
					}
				}
				return g
			})
		}},
		recipes.Field{Key: "machine_id", Decode: func(v *yaml.Node) {
			m, ok := d.Str("sysprep.machine_id", v)
			if ok {
				if err := fsops.CheckSysprepMachineID(m); err != nil {
					d.Errorf(v, "sysprep.machine_id: %q: want %s or %s", m, fsops.MachineIDEmpty, fsops.MachineIDUninitialized)
				}
			}
			s.MachineID = m
		}},
	)
	return &s
}
