package recipes

import "go.yaml.in/yaml/v3"

// MachineIDReset empties /etc/machine-id so that each clone of the image
// gets its own at first boot.
type MachineIDReset struct{}

func init() { register("machine_id_reset", decodeMachineIDReset) }

func (*MachineIDReset) Kind() string     { return "machine_id_reset" }
func (*MachineIDReset) Describe() string { return "machine_id_reset" }

func decodeMachineIDReset(d *decoder, n *yaml.Node) Op {
	d.trueOnly("machine_id_reset", n)
	return &MachineIDReset{}
}
