package steps

import (
	"context"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/recipes"
	"go.yaml.in/yaml/v3"
)

// User creates a user or brings an existing one in line. Unset fields are
// left as they are (or to useradd's defaults for a new user).
type User struct {
	Name              string
	UID               *int
	Groups            []string // supplementary groups the user must be in (others are kept)
	Shell             string
	Home              string
	SSHAuthorizedKeys []string // lines that must be in ~/.ssh/authorized_keys
	Password          *recipes.Secret
	Sudo              *bool // true: /etc/sudoers.d/NAME grants NOPASSWD:ALL; false: removes it
}

func init() {
	register(Kind{Name: "user", Idempotent: true, Decode: decodeUser,
		Example: `user: {name: ops, groups: [sudo], shell: /bin/bash, ssh_authorized_keys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx0ZXN0a2V5dGVzdGtleXRlc3RrZXl0ZXN0a2V5 ops@example"], sudo: true}  # also uid, home, password`,
		Apply: func(ctx context.Context, env Env, st recipes.Step) (fsops.Result, error) {
			op := st.Op.(*User)
			spec := fsops.UserSpec{Name: op.Name, UID: op.UID, Groups: op.Groups, Shell: op.Shell, Home: op.Home,
				Keys: op.SSHAuthorizedKeys, Sudo: op.Sudo}
			note := ""
			if op.Password != nil {
				pw, n, err := resolveSecret(*op.Password)
				if err != nil {
					return fsops.Result{}, err
				}
				spec.Password, note = &pw, n
			}
			res, err := fsops.EnsureUser(ctx, env.Session, spec)
			res.Detail = joinNotes(res.Detail, note)
			return res, err
		},
	})
}

func (*User) Kind() string       { return "user" }
func (u *User) Describe() string { return "user: " + u.Name }

func decodeUser(d *recipes.Decoder, n *yaml.Node) recipes.Op {
	var u User
	d.Fields("user", n,
		recipes.Field{Key: "name", Required: true, Decode: func(v *yaml.Node) { u.Name = d.Account("user.name", "user", v) }},
		recipes.Field{Key: "uid", Decode: func(v *yaml.Node) {
			if id, ok := d.Int("user.uid", v, 0, 1<<32-2); ok {
				u.UID = new(int(id))
			}
		}},
		recipes.Field{Key: "groups", Decode: func(v *yaml.Node) {
			u.Groups = d.StringList("user.groups", v, func(ctx string, n *yaml.Node) string { return d.Account(ctx, "group", n) })
		}},
		recipes.Field{Key: "shell", Decode: func(v *yaml.Node) { u.Shell = d.ImagePath("user.shell", v) }},
		recipes.Field{Key: "home", Decode: func(v *yaml.Node) { u.Home = d.ImagePath("user.home", v) }},
		recipes.Field{Key: "ssh_authorized_keys", Decode: func(v *yaml.Node) {
			u.SSHAuthorizedKeys = d.StringList("user.ssh_authorized_keys", v, d.SSHKey)
		}},
		recipes.Field{Key: "password", Decode: func(v *yaml.Node) {
			var sec recipes.Secret
			if recipes.ResolveAlias(v).Kind == yaml.MappingNode {
				sec, _ = d.Secret("user.password", v, false)
			} else {
				sec.Password = d.Password("user.password", v)
			}
			u.Password = &sec
		}},
		recipes.Field{Key: "sudo", Decode: func(v *yaml.Node) { u.Sudo = new(d.Bool("user.sudo", v)) }},
	)
	return &u
}
