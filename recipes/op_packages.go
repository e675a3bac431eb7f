package recipes

import (
	"strings"

	"go.yaml.in/yaml/v3"
)

// Install installs packages with the image's package manager.
type Install struct{ Packages []string }

// Uninstall removes packages.
type Uninstall struct{ Packages []string }

// Update upgrades every installed package.
type Update struct{}

func init() {
	register("install", func(d *decoder, n *yaml.Node) Op { return &Install{d.packageList("install", n)} })
	register("uninstall", func(d *decoder, n *yaml.Node) Op { return &Uninstall{d.packageList("uninstall", n)} })
	register("update", decodeUpdate)
}

func (*Install) Kind() string         { return "install" }
func (i *Install) Describe() string   { return "install: " + strings.Join(i.Packages, " ") }
func (*Uninstall) Kind() string       { return "uninstall" }
func (u *Uninstall) Describe() string { return "uninstall: " + strings.Join(u.Packages, " ") }
func (*Update) Kind() string          { return "update" }
func (*Update) Describe() string      { return "update: all packages" }

// NeedsNetwork reports whether the op fetches packages.
func NeedsNetwork(op Op) bool {
	switch op.(type) {
	case *Install, *Update:
		return true
	}
	return false
}

// packageList decodes a package name or a list of them. Names are checked
// so that nothing can be smuggled into the package manager's command line.
func (d *decoder) packageList(ctx string, n *yaml.Node) []string {
	v := resolve(n)
	var items []*yaml.Node
	switch v.Kind {
	case yaml.ScalarNode:
		if isNull(v) {
			d.typeError(ctx, "a package name or a list of them", n)
			return nil
		}
		items = []*yaml.Node{v}
	case yaml.SequenceNode:
		if len(v.Content) == 0 {
			d.errorf(n, "%s: the list of packages is empty", ctx)
			return nil
		}
		items = v.Content
	default:
		d.typeError(ctx, "a package name or a list of them", n)
		return nil
	}
	var out []string
	for _, it := range items {
		name, ok := d.str(ctx, it)
		if !ok {
			continue
		}
		if !validPackage(name) {
			d.errorf(it, "%s: %s is not a valid package name", ctx, quote(name))
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

func decodeUpdate(d *decoder, n *yaml.Node) Op {
	if on := d.boolean("update", n); !on {
		d.errorf(n, "update: only `update: true` is meaningful; remove the step instead")
	}
	return &Update{}
}
