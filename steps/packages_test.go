package steps

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/imgbake/imgbake/recipes"
)

func TestPackagesParse(t *testing.T) {
	r, err := recipes.Parse("p.yaml", []byte("steps:\n  - install: [nginx, haveged, \"libc6:amd64\", python3.11]\n  - install: hello\n  - uninstall: [telnet]\n  - update: true\n"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Steps[0].Op.(*Install).Packages; !slices.Equal(got, []string{"nginx", "haveged", "libc6:amd64", "python3.11"}) {
		t.Errorf("install = %v", got)
	}
	if got := r.Steps[1].Op.(*Install).Packages; !slices.Equal(got, []string{"hello"}) {
		t.Errorf("install scalar = %v", got)
	}
	if !NeedsNetwork(r.Steps[0].Op) || NeedsNetwork(r.Steps[2].Op) || !NeedsNetwork(r.Steps[3].Op) {
		t.Error("NeedsNetwork is wrong")
	}
}

func TestPackagesInvalid(t *testing.T) {
	tests := []struct{ src, want string }{
		{"steps:\n  - install: []\n", `p.yaml:2:14: install: the list of packages is empty`},
		{"steps:\n  - install: [\"-o Dpkg::Options=x\"]\n", `p.yaml:2:15: install: "-o Dpkg::Options=x" is not a valid package name`},
		{"steps:\n  - install: [\"a; rm -rf /\"]\n", `p.yaml:2:15: install: "a; rm -rf /" is not a valid package name`},
		{"steps:\n  - uninstall: {name: x}\n", `p.yaml:2:16: uninstall: expected a package name or a list of them, got a mapping`},
		{"steps:\n  - install:\n", `p.yaml:2:13: install: expected a package name or a list of them, got null`},
		{"steps:\n  - update: false\n", `p.yaml:2:13: update: only ` + "`update: true`" + ` is meaningful; remove the step instead`},
		{"steps:\n  - update: yes please\n", `p.yaml:2:13: update: expected true or false, got string "yes please"`},
	}
	for _, tt := range tests {
		_, err := recipes.Parse("p.yaml", []byte(tt.src), t.TempDir())
		var el recipes.ErrorList
		if !errors.As(err, &el) {
			t.Errorf("%q: want errors, got %v", tt.src, err)
			continue
		}
		if got := el.Error(); !strings.HasPrefix(got, tt.want) {
			t.Errorf("%q:\n got %s\nwant %s", tt.src, got, tt.want)
		}
	}
}
