package steps

import (
	"context"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/recipes"
	"go.yaml.in/yaml/v3"
)

// SSHInject adds public keys to a user's ~/.ssh/authorized_keys, keeping
// the keys already there.
type SSHInject struct {
	User string
	Key  string // one key line, or
	File string // absolute host path of a public key file (one key per line)
}

func init() {
	register(Kind{Name: "ssh_inject", Idempotent: true, Decode: decodeSSHInject,
		Example: `ssh_inject: {user: root, file: ./id_ed25519.pub}   # or key: "ssh-ed25519 AAAA..."; appended to ~/.ssh/authorized_keys`,
		Apply: func(ctx context.Context, env Env, st recipes.Step) (fsops.Result, error) {
			op := st.Op.(*SSHInject)
			keys := []string{op.Key}
			if op.File != "" {
				var err error
				if keys, err = readKeyFile(op.File); err != nil {
					return fsops.Result{}, err
				}
			}
			return fsops.AuthorizeKeys(ctx, env.Session, op.User, keys)
		},
	})
}

func (*SSHInject) Kind() string       { return "ssh_inject" }
func (s *SSHInject) Describe() string { return "ssh_inject: " + s.User }

func decodeSSHInject(d *recipes.Decoder, n *yaml.Node) recipes.Op {
	var s SSHInject
	var first string
	one := func(key string, v *yaml.Node) {
		if first != "" {
			d.Errorf(v, "ssh_inject.%s: give only one of key, file (%s is already set)", key, first)
		}
		first = key
	}
	if d.Fields("ssh_inject", n,
		recipes.Field{Key: "user", Required: true, Decode: func(v *yaml.Node) { s.User = d.Account("ssh_inject.user", "user", v) }},
		recipes.Field{Key: "key", Decode: func(v *yaml.Node) { s.Key = d.SSHKey("ssh_inject.key", v); one("key", v) }},
		recipes.Field{Key: "file", Decode: func(v *yaml.Node) { s.File = d.ExistingHostPath("ssh_inject.file", v); one("file", v) }},
	) && first == "" {
		d.Errorf(n, "ssh_inject: needs one of key, file")
	}
	return &s
}
