package recipes

import "go.yaml.in/yaml/v3"

// SELinuxRelabel schedules a full SELinux relabel at the next boot
// (/.autorelabel) when the image has SELinux enabled; otherwise it does
// nothing.
type SELinuxRelabel struct{}

func init() { register("selinux_relabel", decodeSELinuxRelabel) }

func (*SELinuxRelabel) Kind() string     { return "selinux_relabel" }
func (*SELinuxRelabel) Describe() string { return "selinux_relabel" }

func decodeSELinuxRelabel(d *decoder, n *yaml.Node) Op {
	d.trueOnly("selinux_relabel", n)
	return &SELinuxRelabel{}
}
