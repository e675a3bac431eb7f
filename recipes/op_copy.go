package recipes

import "go.yaml.in/yaml/v3"

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
	register("copy_in", decodeCopyIn)
	register("copy_out", decodeCopyOut)
}

func (*CopyIn) Kind() string        { return "copy_in" }
func (c *CopyIn) Describe() string  { return "copy_in: " + c.Src + " -> " + c.Dest }
func (*CopyOut) Kind() string       { return "copy_out" }
func (c *CopyOut) Describe() string { return "copy_out: " + c.Src + " -> " + c.Dest }

func decodeCopyIn(d *decoder, n *yaml.Node) Op {
	var c CopyIn
	d.fields("copy_in", n,
		field{key: "src", required: true, decode: func(v *yaml.Node) { c.Src = d.existingHostPath("copy_in.src", v) }},
		field{key: "dest", required: true, decode: func(v *yaml.Node) { c.Dest = d.imagePath("copy_in.dest", v) }},
	)
	return &c
}

func decodeCopyOut(d *decoder, n *yaml.Node) Op {
	var c CopyOut
	d.fields("copy_out", n,
		field{key: "src", required: true, decode: func(v *yaml.Node) { c.Src = d.imagePath("copy_out.src", v) }},
		field{key: "dest", required: true, decode: func(v *yaml.Node) { c.Dest, _ = d.hostPath("copy_out.dest", v) }},
	)
	return &c
}
