package steps

import (
	"strings"
	"testing"

	"github.com/imgbake/imgbake/recipes"
)

// TestRegistry walks the operations table: every kind has an example that
// passes check, a case in the apply table, properties that agree with the
// language, and an idempotent kind is applied twice there.
func TestRegistry(t *testing.T) {
	all := All()
	if len(all) == 0 {
		t.Fatal("no step kinds registered")
	}
	hostDir := t.TempDir()
	writeTree(t, hostDir, hostTree)
	names := map[string]bool{}
	for _, k := range all {
		names[k.Name] = true
		if !strings.HasPrefix(k.Example, k.Name+":") {
			t.Errorf("%s: example %q does not start with the kind's key", k.Name, k.Example)
		}
		src := "vars:\n  site: web\nsteps:\n  - " + k.Example + "\n"
		rec, err := recipes.Parse("example.yaml", []byte(src), hostDir)
		if err != nil {
			t.Errorf("%s: its example does not pass check:\n%v", k.Name, err)
		} else if got := rec.Steps[0].Op.Kind(); got != k.Name {
			t.Errorf("%s: its example decodes as %s", k.Name, got)
		}
		tc, ok := applyCases[k.Name]
		switch {
		case !ok:
			t.Errorf("%s: missing from applyCases (apply_test.go): every kind needs a case", k.Name)
		case tc.check == nil:
			t.Errorf("%s: its apply case checks nothing", k.Name)
		case k.Idempotent && !tc.again && tc.onceWhy == "":
			t.Errorf("%s: marked idempotent but its apply case does not apply it twice", k.Name)
		case tc.again && !k.Idempotent:
			t.Errorf("%s: applied twice without a change but not marked idempotent", k.Name)
		}
		if k.Command && k.Idempotent {
			t.Errorf("%s: a command kind cannot be idempotent: imgbake cannot see its effect", k.Name)
		}
	}
	for name := range applyCases {
		if !names[name] {
			t.Errorf("applyCases has %s, which is not a registered kind", name)
		}
	}
	// The language sees exactly the registered kinds.
	if got := strings.Join(recipes.Kinds(), ","); got != strings.Join(sortedNames(all), ",") {
		t.Errorf("recipes.Kinds() = %s, registry has %s", got, strings.Join(sortedNames(all), ","))
	}
}

func sortedNames(ks []Kind) []string {
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i] = k.Name
	}
	return out
}
