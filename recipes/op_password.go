package recipes

import "go.yaml.in/yaml/v3"

// Password sets an existing user's password.
type Password struct {
	User string
	Secret
}

func init() { register("password", decodePassword) }

func (*Password) Kind() string       { return "password" }
func (p *Password) Describe() string { return "password: " + p.User + " (" + p.Source() + ")" }

func decodePassword(d *decoder, n *yaml.Node) Op {
	var p Password
	s, fields := d.secretFields("password", false)
	fields = append([]field{{key: "user", required: true, decode: func(v *yaml.Node) {
		p.User = d.account("password.user", "user", v)
	}}}, fields...)
	if d.fields("password", n, fields...) {
		s.done(n)
	}
	p.Secret = s.sec
	return &p
}
