package steps

import (
	"context"
	"strings"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/recipes"
	"go.yaml.in/yaml/v3"
)

// Install installs packages with the image's package manager.
type Install struct{ Packages []string }

// Uninstall removes packages.
type Uninstall struct{ Packages []string }

// Update upgrades every installed package.
type Update struct{}

func init() {
	register(Kind{Name: "install", NeedsNetwork: true, Idempotent: true, Decode: func(d *recipes.Decoder, n *yaml.Node) recipes.Op { return &Install{packageList(d, "install", n)} },
		Example: `install: [nginx, haveged]               # the image's package manager (apt, dnf, yum, zypper, apk, pacman); ok if installed`,
		Apply: func(ctx context.Context, env Env, st recipes.Step) (fsops.Result, error) {
			return fsops.Install(ctx, env.Session, st.Op.(*Install).Packages, env.packageOptions(st))
		},
	})
	register(Kind{Name: "uninstall", Idempotent: true, Decode: func(d *recipes.Decoder, n *yaml.Node) recipes.Op { return &Uninstall{packageList(d, "uninstall", n)} },
		Example: `uninstall: [telnet]                     # ok if not installed`,
		Apply: func(ctx context.Context, env Env, st recipes.Step) (fsops.Result, error) {
			return fsops.Uninstall(ctx, env.Session, st.Op.(*Uninstall).Packages, env.packageOptions(st))
		},
	})
	register(Kind{Name: "update", NeedsNetwork: true, Idempotent: true, Decode: decodeUpdate,
		Example: `update: true                            # upgrade every package; changed only if something was`,
		Apply: func(ctx context.Context, env Env, st recipes.Step) (fsops.Result, error) {
			return fsops.Update(ctx, env.Session, env.packageOptions(st))
		},
	})
}

func (*Install) Kind() string         { return "install" }
func (i *Install) Describe() string   { return "install: " + strings.Join(i.Packages, " ") }
func (*Uninstall) Kind() string       { return "uninstall" }
func (u *Uninstall) Describe() string { return "uninstall: " + strings.Join(u.Packages, " ") }
func (*Update) Kind() string          { return "update" }
func (*Update) Describe() string      { return "update: all packages" }

// packageList decodes a package name or a list of them. Names are checked
// so that nothing can be smuggled into the package manager's command line.
func packageList(d *recipes.Decoder, ctx string, n *yaml.Node) []string {
	v := recipes.ResolveAlias(n)
	var items []*yaml.Node
	switch v.Kind {
	case yaml.ScalarNode:
		if recipes.IsNull(v) {
			d.TypeError(ctx, "a package name or a list of them", n)
			return nil
		}
		items = []*yaml.Node{v}
	case yaml.SequenceNode:
		if len(v.Content) == 0 {
			d.Errorf(n, "%s: the list of packages is empty", ctx)
			return nil
		}
		items = v.Content
	default:
		d.TypeError(ctx, "a package name or a list of them", n)
		return nil
	}
	var out []string
	for _, it := range items {
		name, ok := d.Str(ctx, it)
		if !ok {
			continue
		}
		if !validPackage(name) {
			d.Errorf(it, "%s: %s is not a valid package name", ctx, recipes.Quote(name))
			continue
		}
		out = append(out, name)
	}
	return out
}

// validPackage allows what Debian, RPM, apk and pacman names (with an
// optional version or arch qualifier) contain, and no option-like names.
func validPackage(s string) bool {
	if s == "" || s[0] == '-' || len(s) > 200 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("+-._:=~@/<>*", c)) {
			return false
		}
	}
	return true
}

func decodeUpdate(d *recipes.Decoder, n *yaml.Node) recipes.Op {
	if on := d.Bool("update", n); !on {
		d.Errorf(n, "update: only `update: true` is meaningful; remove the step instead")
	}
	return &Update{}
}
