package recipes

import (
	"maps"
	"slices"

	"go.yaml.in/yaml/v3"
)

// Op is what a step does to the image. Each kind of op is a pointer to a
// struct of the package that defines the kind (see package steps).
type Op interface {
	// Kind is the recipe key that selects the op, e.g. "write".
	Kind() string
	// Describe summarizes the op on one line, e.g. "write: /etc/motd".
	Describe() string
}

// DecodeFunc decodes and validates the value under an op's key, reporting
// every problem through d. Its result is discarded if d recorded any error,
// so it may return a partly filled op, or nil.
type DecodeFunc func(d *Decoder, value *yaml.Node) Op

// Syntax is what the recipe language needs to know about a step kind.
type Syntax struct {
	Kind   string
	Decode DecodeFunc
	// Command kinds run a program whose effect imgbake cannot see: they
	// may use changed_when and creates.
	Command bool
}

var syntaxes = make(map[string]Syntax)

// Register makes a step kind usable in recipes. Package steps registers
// every kind from its own file; recipes itself defines none, so a program
// that parses recipes imports steps.
func Register(s Syntax) {
	if _, dup := syntaxes[s.Kind]; dup {
		panic("recipes: step kind registered twice: " + s.Kind)
	}
	if s.Kind == "" || s.Decode == nil {
		panic("recipes: step kind without a name or decoder")
	}
	syntaxes[s.Kind] = s
}

// Kinds returns the names of all registered step kinds, sorted.
func Kinds() []string {
	return slices.Sorted(maps.Keys(syntaxes))
}
