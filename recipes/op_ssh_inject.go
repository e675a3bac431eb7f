package recipes

import "go.yaml.in/yaml/v3"

// SSHInject adds public keys to a user's ~/.ssh/authorized_keys, keeping
// the keys already there.
type SSHInject struct {
	User string
	Key  string // one key line, or
	File string // absolute host path of a public key file (one key per line)
}

func init() { register("ssh_inject", decodeSSHInject) }

func (*SSHInject) Kind() string       { return "ssh_inject" }
func (s *SSHInject) Describe() string { return "ssh_inject: " + s.User }

func decodeSSHInject(d *decoder, n *yaml.Node) Op {
	var s SSHInject
	var first string
	one := func(key string, v *yaml.Node) {
		if first != "" {
			d.errorf(v, "ssh_inject.%s: give only one of key, file (%s is already set)", key, first)
		}
		first = key
	}
	if d.fields("ssh_inject", n,
		field{key: "user", required: true, decode: func(v *yaml.Node) { s.User = d.account("ssh_inject.user", "user", v) }},
		field{key: "key", decode: func(v *yaml.Node) { s.Key = d.sshKey("ssh_inject.key", v); one("key", v) }},
		field{key: "file", decode: func(v *yaml.Node) { s.File = d.existingHostPath("ssh_inject.file", v); one("file", v) }},
	) && first == "" {
		d.errorf(n, "ssh_inject: needs one of key, file")
	}
	return &s
}
