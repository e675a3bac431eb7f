// Package steps is imgbake's operations table: every recipe step kind is
// defined here, one file per kind, in a single registration that holds its
// name, a one-line example, its decoder, its properties and the function
// that carries it out on an open image (through fsops). `imgbake steps`,
// `imgbake check`, the generated step reference and the engine's dispatch
// all read this table, in the manner of virt-customize's operations list
// and Ignition's stage registry.
//
// Adding a kind: one file here with its op struct, Kind/Describe, decoder
// and register call from init, plus a case in the tests (the registry test
// fails until the kind has an example that passes check and a case in the
// apply table).
package steps

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/recipes"
)

// Kind is one step kind: how a recipe spells it, and what it does.
type Kind struct {
	Name    string             // the recipe key, e.g. "write"
	Example string             // one line of YAML with a short comment
	Decode  recipes.DecodeFunc // validates and decodes the value under the key
	Apply   ApplyFunc          // carries out a resolved step

	Command      bool // runs a program: may use changed_when and creates; not idempotent
	NeedsNetwork bool // fetches packages: the appliance gets a network
	Idempotent   bool // a second run reports ok, never changed
	// HostEffect kinds change the host (copy_out writes a host
	// directory): a step-layer cache never skips them, so the cached
	// prefix ends before them.
	HostEffect bool
}

// ApplyFunc carries out st (its Op already resolved with the run's facts)
// on env's session.
type ApplyFunc func(ctx context.Context, env Env, st recipes.Step) (fsops.Result, error)

// Env is what a step sees of its run.
type Env struct {
	Session fsops.Session
	Facts   recipes.Facts
	Data    map[string]any // template data of the run: vars and facts (see recipes.Recipe.Data)
	Network bool           // the appliance has a network (package steps)
	Live    io.Writer      // where commands' output is copied as it comes (-v); nil: captured only
}

var kinds = map[string]Kind{}

func register(k Kind) {
	if _, dup := kinds[k.Name]; dup {
		panic("steps: kind registered twice: " + k.Name)
	}
	if k.Example == "" || k.Apply == nil {
		panic("steps: kind " + k.Name + " needs an example and an apply function")
	}
	recipes.Register(recipes.Syntax{Kind: k.Name, Decode: k.Decode, Command: k.Command})
	kinds[k.Name] = k
}

// All returns every kind, sorted by name.
func All() []Kind {
	out := make([]Kind, 0, len(kinds))
	for _, name := range slices.Sorted(maps.Keys(kinds)) {
		out = append(out, kinds[name])
	}
	return out
}

// Lookup returns the kind named name.
func Lookup(name string) (Kind, bool) {
	k, ok := kinds[name]
	return k, ok
}

// Apply carries out st on env's session with its kind's function.
func Apply(ctx context.Context, env Env, st recipes.Step) (fsops.Result, error) {
	k, ok := kinds[st.Op.Kind()]
	if !ok {
		return fsops.Result{}, fmt.Errorf("step kind %q is not implemented", st.Op.Kind())
	}
	return k.Apply(ctx, env, st)
}

// NeedsNetwork reports whether op fetches packages.
func NeedsNetwork(op recipes.Op) bool {
	if op == nil {
		return false
	}
	return kinds[op.Kind()].NeedsNetwork
}

// runOptions are the options of a command a step runs.
func (env Env) runOptions(st recipes.Step) fsops.RunOptions {
	return fsops.RunOptions{Timeout: st.Timeout, Stdout: env.Live, Stderr: env.Live}
}

func (env Env) packageOptions(st recipes.Step) fsops.PackageOptions {
	return fsops.PackageOptions{Manager: env.Facts.PackageManager, Network: env.Network, Run: env.runOptions(st)}
}
