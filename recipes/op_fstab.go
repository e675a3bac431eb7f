package recipes

import (
	"path"
	"strings"

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

func init() { register("fstab", decodeFstab) }

func (*Fstab) Kind() string       { return "fstab" }
func (f *Fstab) Describe() string { return "fstab: " + f.Spec + " " + f.File }

func decodeFstab(d *decoder, n *yaml.Node) Op {
	f := Fstab{MntOps: "defaults"}
	word := func(ctx, what string, v *yaml.Node) string {
		s := d.singleLine(ctx, what, v)
		if s != "" && strings.ContainsAny(s, " \t") {
			d.errorf(v, "%s: %s must not contain spaces", ctx, what)
		}
		return s
	}
	d.fields("fstab", n,
		field{key: "spec", required: true, decode: func(v *yaml.Node) { f.Spec = d.singleLine("fstab.spec", "spec", v) }},
		field{key: "file", required: true, decode: func(v *yaml.Node) {
			s, ok := d.str("fstab.file", v)
			switch {
			case !ok:
			case s == "none":
				f.File = s
			case !path.IsAbs(s) || strings.ContainsAny(s, "\n\r\x00"):
				d.errorf(v, "fstab.file: %s is not absolute; want a mount point like /data (or none for swap)", quote(s))
			default:
				f.File = path.Clean(s)
			}
		}},
		field{key: "vfstype", required: true, decode: func(v *yaml.Node) { f.VFSType = word("fstab.vfstype", "vfstype", v) }},
		field{key: "mntops", decode: func(v *yaml.Node) { f.MntOps = word("fstab.mntops", "mntops", v) }},
		field{key: "freq", decode: func(v *yaml.Node) {
			x, _ := d.integer("fstab.freq", v, 0, 9)
			f.Freq = int(x)
		}},
		field{key: "passno", decode: func(v *yaml.Node) {
			x, _ := d.integer("fstab.passno", v, 0, 9)
			f.PassNo = int(x)
		}},
	)
	return &f
}
