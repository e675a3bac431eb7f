package recipes

import (
	"strings"

	"go.yaml.in/yaml/v3"
)

// Link makes Path a symlink to Target.
type Link struct {
	Target string // stored verbatim: absolute (resolved in the image) or relative to Path's directory
	Path   string
}

func init() { register("link", decodeLink) }

func (*Link) Kind() string       { return "link" }
func (l *Link) Describe() string { return "link: " + l.Path + " -> " + l.Target }

func decodeLink(d *decoder, n *yaml.Node) Op {
	var l Link
	d.fields("link", n,
		field{key: "target", required: true, decode: func(v *yaml.Node) {
			s, ok := d.str("link.target", v)
			switch {
			case !ok:
			case s == "":
				d.errorf(v, "link.target: empty target")
			case strings.ContainsRune(s, 0):
				d.errorf(v, "link.target: %s contains a NUL byte", quote(s))
			case len(s) >= 4096:
				d.errorf(v, "link.target: longer than 4095 bytes")
			}
			l.Target = s
		}},
		field{key: "path", required: true, decode: func(v *yaml.Node) { l.Path = d.filesTarget("link.path", v) }},
	)
	return &l
}
