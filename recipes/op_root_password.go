package recipes

import "go.yaml.in/yaml/v3"

// RootPassword sets root's password, or locks the account.
type RootPassword struct {
	Secret      // unset when Locked
	Locked bool // prefix the hash with '!', like passwd -l
}

func init() { register("root_password", decodeRootPassword) }

func (*RootPassword) Kind() string { return "root_password" }
func (r *RootPassword) Describe() string {
	if r.Locked {
		return "root_password: locked"
	}
	return "root_password: " + r.Source()
}

func decodeRootPassword(d *decoder, n *yaml.Node) Op {
	var r RootPassword
	r.Secret, r.Locked = d.secret("root_password", n, true)
	return &r
}
