package steps

import (
	"context"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/recipes"
	"go.yaml.in/yaml/v3"
)

// CopyIn copies a host file or directory (recursively) into directory Dest
// in the image.
type CopyIn struct {
	Src  string // absolute host path; checked to exist when the recipe loads
	Dest string
}

// CopyOut copies a file or directory (recursively) from the image into
// directory Dest on the host.
type CopyOut struct {
	Src  string
	Dest string // absolute host path
}

func init() {
	register(Kind{Name: "copy_in", Decode: decodeCopyIn,
		Example: `copy_in: {src: ./files, dest: /opt/app}     # host file/dir (relative to the recipe) into image dir`,
		Apply: func(ctx context.Context, env Env, st recipes.Step) (fsops.Result, error) {
			op := st.Op.(*CopyIn)
			return fsops.CopyIn(ctx, env.Session, op.Src, op.Dest)
		},
	})
	register(Kind{Name: "copy_out", Idempotent: true, HostEffect: true, Decode: decodeCopyOut,
		Example: `copy_out: {src: /etc/os-release, dest: ./out} # image file/dir into host dir`,
		Apply: func(ctx context.Context, env Env, st recipes.Step) (fsops.Result, error) {
			op := st.Op.(*CopyOut)
			return fsops.CopyOut(ctx, env.Session, op.Src, op.Dest)
		},
	})
}

func (*CopyIn) Kind() string        { return "copy_in" }
func (c *CopyIn) Describe() string  { return "copy_in: " + c.Src + " -> " + c.Dest }
func (*CopyOut) Kind() string       { return "copy_out" }
func (c *CopyOut) Describe() string { return "copy_out: " + c.Src + " -> " + c.Dest }

func decodeCopyIn(d *recipes.Decoder, n *yaml.Node) recipes.Op {
	var c CopyIn
	d.Fields("copy_in", n,
		recipes.Field{Key: "src", Required: true, Decode: func(v *yaml.Node) { c.Src = d.ExistingHostPath("copy_in.src", v) }},
		recipes.Field{Key: "dest", Required: true, Decode: func(v *yaml.Node) { c.Dest = d.ImagePath("copy_in.dest", v) }},
	)
	return &c
}

func decodeCopyOut(d *recipes.Decoder, n *yaml.Node) recipes.Op {
	var c CopyOut
	d.Fields("copy_out", n,
		recipes.Field{Key: "src", Required: true, Decode: func(v *yaml.Node) { c.Src = d.ImagePath("copy_out.src", v) }},
		recipes.Field{Key: "dest", Required: true, Decode: func(v *yaml.Node) { c.Dest, _ = d.HostPath("copy_out.dest", v) }},
	)
	return &c
}
