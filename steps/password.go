package steps

import (
	"context"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/recipes"
	"go.yaml.in/yaml/v3"
)

// Password sets an existing user's password.
type Password struct {
	User string
	recipes.Secret
}

func init() {
	register(Kind{Name: "password", Idempotent: true, Decode: decodePassword,
		Example: `password: {user: ops, random: ./ops-password.txt}   # or password: / file: (first line); hashed by the image's chpasswd`,
		Apply: func(ctx context.Context, env Env, st recipes.Step) (fsops.Result, error) {
			op := st.Op.(*Password)
			pw, note, err := resolveSecret(op.Secret)
			if err != nil {
				return fsops.Result{}, err
			}
			res, err := fsops.SetPassword(ctx, env.Session, op.User, pw)
			res.Detail = joinNotes(res.Detail, note)
			return res, err
		},
	})
}

func (*Password) Kind() string       { return "password" }
func (p *Password) Describe() string { return "password: " + p.User + " (" + p.Source() + ")" }

func decodePassword(d *recipes.Decoder, n *yaml.Node) recipes.Op {
	var p Password
	s, fields := d.SecretFields("password", false)
	fields = append([]recipes.Field{{Key: "user", Required: true, Decode: func(v *yaml.Node) {
		p.User = d.Account("password.user", "user", v)
	}}}, fields...)
	if d.Fields("password", n, fields...) {
		s.Done(n)
	}
	p.Secret = s.Value()
	return &p
}
