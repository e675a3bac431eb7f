package steps

import (
	"context"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/recipes"
	"go.yaml.in/yaml/v3"
)

// RootPassword sets root's password, or locks the account.
type RootPassword struct {
	recipes.Secret      // unset when Locked
	Locked         bool // prefix the hash with '!', like passwd -l
}

func init() {
	register(Kind{Name: "root_password", Idempotent: true, Decode: decodeRootPassword,
		Example: `root_password: {random: ./root-password.txt}   # or password: / file: / locked: true`,
		Apply: func(ctx context.Context, env Env, st recipes.Step) (fsops.Result, error) {
			op := st.Op.(*RootPassword)
			if op.Locked {
				return fsops.LockPassword(ctx, env.Session, "root")
			}
			pw, note, err := resolveSecret(op.Secret)
			if err != nil {
				return fsops.Result{}, err
			}
			res, err := fsops.SetPassword(ctx, env.Session, "root", pw)
			res.Detail = joinNotes(res.Detail, note)
			return res, err
		},
	})
}

func (*RootPassword) Kind() string { return "root_password" }
func (r *RootPassword) Describe() string {
	if r.Locked {
		return "root_password: locked"
	}
	return "root_password: " + r.Source()
}

func decodeRootPassword(d *recipes.Decoder, n *yaml.Node) recipes.Op {
	var r RootPassword
	r.Secret, r.Locked = d.Secret("root_password", n, true)
	return &r
}
