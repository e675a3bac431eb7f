package steps

import (
	"context"
	"path"
	"strings"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/recipes"
	"go.yaml.in/yaml/v3"
)

// Fstab adds an /etc/fstab entry, or replaces the one for the same mount
// point (for swap and "none" mount points: for the same spec). Fields are
// as in fstab(5).
type Fstab struct {
	Spec    string // e.g. LABEL=data, UUID=..., /dev/vdb1
	File    string // the mount point, or "none" (swap)
	VFSType string
	MntOps  string // default "defaults"
	Freq    int
	PassNo  int
}

func init() {
	register(Kind{Name: "fstab", Idempotent: true, Decode: decodeFstab,
		Example: `fstab: {spec: LABEL=data, file: /data, vfstype: ext4, mntops: "defaults,nofail", passno: 2}   # add or replace the /data entry`,
		Apply: func(ctx context.Context, env Env, st recipes.Step) (fsops.Result, error) {
			op := st.Op.(*Fstab)
			return fsops.Fstab(ctx, env.Session, fsops.FstabEntry{Spec: op.Spec, File: op.File, VFSType: op.VFSType,
				MntOps: op.MntOps, Freq: op.Freq, PassNo: op.PassNo})
		},
	})
}

func (*Fstab) Kind() string       { return "fstab" }
func (f *Fstab) Describe() string { return "fstab: " + f.Spec + " " + f.File }

func decodeFstab(d *recipes.Decoder, n *yaml.Node) recipes.Op {
	f := Fstab{MntOps: "defaults"}
	word := func(ctx, what string, v *yaml.Node) string {
		s := d.SingleLine(ctx, what, v)
		if s != "" && strings.ContainsAny(s, " \t") {
			d.Errorf(v, "%s: %s must not contain spaces", ctx, what)
		}
		return s
	}
	d.Fields("fstab", n,
		recipes.Field{Key: "spec", Required: true, Decode: func(v *yaml.Node) { f.Spec = d.SingleLine("fstab.spec", "spec", v) }},
		recipes.Field{Key: "file", Required: true, Decode: func(v *yaml.Node) {
			s, ok := d.Str("fstab.file", v)
			switch {
			case !ok:
			case s == "none":
				f.File = s
			case !path.IsAbs(s) || strings.ContainsAny(s, "\n\r\x00"):
				d.Errorf(v, "fstab.file: %s is not absolute; want a mount point like /data (or none for swap)", recipes.Quote(s))
			default:
				f.File = path.Clean(s)
			}
		}},
		recipes.Field{Key: "vfstype", Required: true, Decode: func(v *yaml.Node) { f.VFSType = word("fstab.vfstype", "vfstype", v) }},
		recipes.Field{Key: "mntops", Decode: func(v *yaml.Node) { f.MntOps = word("fstab.mntops", "mntops", v) }},
		recipes.Field{Key: "freq", Decode: func(v *yaml.Node) {
			x, _ := d.Int("fstab.freq", v, 0, 9)
			f.Freq = int(x)
		}},
		recipes.Field{Key: "passno", Decode: func(v *yaml.Node) {
			x, _ := d.Int("fstab.passno", v, 0, 9)
			f.PassNo = int(x)
		}},
	)
	return &f
}
