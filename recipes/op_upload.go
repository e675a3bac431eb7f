package recipes

import (
	"io/fs"

	"go.yaml.in/yaml/v3"
)

// Upload copies one host file to the explicit path Dest in the image.
type Upload struct {
	Src   string       // absolute host path of a regular file; checked when the recipe loads
	Dest  string       // the file's path in the image (not a directory to copy into)
	Mode  *fs.FileMode // nil: keep an existing file's mode, else Src's permission bits
	Owner string       // "" keeps an existing file's owner, else root
}

func init() { register("upload", decodeUpload) }

func (*Upload) Kind() string       { return "upload" }
func (u *Upload) Describe() string { return "upload: " + u.Dest }

func decodeUpload(d *decoder, n *yaml.Node) Op {
	var u Upload
	d.fields("upload", n,
		field{key: "src", required: true, decode: func(v *yaml.Node) { u.Src = d.filesHostFile("upload.src", v, "; use copy_in for directories") }},
		field{key: "dest", required: true, decode: func(v *yaml.Node) { u.Dest = d.filesTarget("upload.dest", v) }},
		field{key: "mode", decode: func(v *yaml.Node) { u.Mode = d.mode("upload.mode", v) }},
		field{key: "owner", decode: func(v *yaml.Node) { u.Owner = d.owner("upload.owner", v) }},
	)
	return &u
}
