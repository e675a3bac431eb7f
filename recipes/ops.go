package recipes

import (
	"maps"
	"slices"

	"go.yaml.in/yaml/v3"
)

// Op is what a step does to the image. Each kind of op is a pointer to a
// struct in this package, e.g. *Write; switch on the type to carry it out.
type Op interface {
	// Kind is the recipe key that selects the op, e.g. "write".
	Kind() string
	// Describe summarizes the op on one line, e.g. "write: /etc/motd".
	Describe() string
}

// decodeFunc decodes and validates the value under an op's key, reporting
// every problem through d. Its result is discarded if d recorded any error,
// so it may return a partly filled op, or nil.
type decodeFunc func(d *decoder, value *yaml.Node) Op

var opDecoders = make(map[string]decodeFunc)

// register makes an op kind usable in recipes. Each kind lives in its own
// op_*.go file: its struct, Kind, Describe, and a decodeFunc built from the
// decoder's helpers (fields, str, imagePath, mode, owner, ...), registered
// from init. Nothing else needs to change, apart from covering the new kind
// in TestParseValid.
func register(kind string, decode decodeFunc) {
	if _, dup := opDecoders[kind]; dup {
		panic("recipes: op kind registered twice: " + kind)
	}
	opDecoders[kind] = decode
}

// Kinds returns the names of all op kinds, sorted.
func Kinds() []string {
	return slices.Sorted(maps.Keys(opDecoders))
}
