package recipes

import (
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
	Password          *Secret
	Sudo              *bool // true: /etc/sudoers.d/NAME grants NOPASSWD:ALL; false: removes it
}

func init() { register("user", decodeUser) }

func (*User) Kind() string       { return "user" }
func (u *User) Describe() string { return "user: " + u.Name }

func decodeUser(d *decoder, n *yaml.Node) Op {
	var u User
	d.fields("user", n,
		field{key: "name", required: true, decode: func(v *yaml.Node) { u.Name = d.account("user.name", "user", v) }},
		field{key: "uid", decode: func(v *yaml.Node) {
			if id, ok := d.integer("user.uid", v, 0, 1<<32-2); ok {
				u.UID = new(int(id))
			}
		}},
		field{key: "groups", decode: func(v *yaml.Node) {
			u.Groups = d.stringList("user.groups", v, func(ctx string, n *yaml.Node) string { return d.account(ctx, "group", n) })
		}},
		field{key: "shell", decode: func(v *yaml.Node) { u.Shell = d.imagePath("user.shell", v) }},
		field{key: "home", decode: func(v *yaml.Node) { u.Home = d.imagePath("user.home", v) }},
		field{key: "ssh_authorized_keys", decode: func(v *yaml.Node) {
			u.SSHAuthorizedKeys = d.stringList("user.ssh_authorized_keys", v, d.sshKey)
		}},
		field{key: "password", decode: func(v *yaml.Node) {
			var sec Secret
			if resolve(v).Kind == yaml.MappingNode {
				sec, _ = d.secret("user.password", v, false)
			} else {
				sec.Password = d.password("user.password", v)
			}
			u.Password = &sec
		}},
		field{key: "sudo", decode: func(v *yaml.Node) { u.Sudo = new(d.boolean("user.sudo", v)) }},
	)
	return &u
}
