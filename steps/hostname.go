package steps

import (
	"context"
	"fmt"
	"strings"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/recipes"
	"go.yaml.in/yaml/v3"
)

// Hostname sets the image's hostname.
type Hostname struct {
	Name string
}

func init() {
	register(Kind{Name: "hostname", Idempotent: true, Decode: decodeHostname,
		Example: `hostname: baked                       # /etc/hostname and the 127.0.1.1 line of /etc/hosts`,
		Apply: func(ctx context.Context, env Env, st recipes.Step) (fsops.Result, error) {
			return fsops.Hostname(ctx, env.Session, st.Op.(*Hostname).Name)
		},
	})
}

func (*Hostname) Kind() string       { return "hostname" }
func (h *Hostname) Describe() string { return "hostname: " + h.Name }

func decodeHostname(d *recipes.Decoder, n *yaml.Node) recipes.Op {
	name, ok := d.Str("hostname", n)
	if !ok {
		return nil
	}
	if err := checkHostname(name); err != nil {
		d.Errorf(n, "hostname: %v", err)
	}
	return &Hostname{Name: name}
}

// checkHostname enforces RFC 1123: dot-separated labels of 1 to 63 letters,
// digits and inner hyphens, at most 253 characters in all.
func checkHostname(name string) error {
	if name == "" {
		return fmt.Errorf("hostname is empty")
	}
	if len(name) > 253 {
		return fmt.Errorf("%s is %d characters long (max 253)", recipes.Quote(name), len(name))
	}
	for label := range strings.SplitSeq(name, ".") {
		switch {
		case label == "":
			return fmt.Errorf("%s has an empty label", recipes.Quote(name))
		case len(label) > 63:
			return fmt.Errorf("label %s is %d characters long (max 63)", recipes.Quote(label), len(label))
		case label[0] == '-' || label[len(label)-1] == '-':
			return fmt.Errorf("label %s starts or ends with '-'", recipes.Quote(label))
		}
		for _, c := range label {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return fmt.Errorf("%s contains %q; only letters, digits, '-' and '.' are allowed", recipes.Quote(name), c)
			}
		}
	}
	return nil
}
