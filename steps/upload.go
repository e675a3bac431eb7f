package steps

import (
	"context"
	"io/fs"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/recipes"
	"go.yaml.in/yaml/v3"
)

// Upload copies one host file to the explicit path Dest in the image.
type Upload struct {
	Src   string       // absolute host path of a regular file; checked when the recipe loads
	Dest  string       // the file's path in the image (not a directory to copy into)
	Mode  *fs.FileMode // nil: keep an existing file's mode, else Src's permission bits
	Owner string       // "" keeps an existing file's owner, else root
}

func init() {
	register(Kind{Name: "upload", Idempotent: true, Decode: decodeUpload,
		Example: `upload: {src: ./app.conf, dest: /etc/app/app.conf, mode: "0640", owner: root:root}  # one host file to this exact path`,
		Apply: func(ctx context.Context, env Env, st recipes.Step) (fsops.Result, error) {
			op := st.Op.(*Upload)
			return fsops.Upload(ctx, env.Session, op.Src, op.Dest, fsops.WriteOptions{Mode: op.Mode, Owner: op.Owner})
		},
	})
}

func (*Upload) Kind() string       { return "upload" }
func (u *Upload) Describe() string { return "upload: " + u.Dest }

func decodeUpload(d *recipes.Decoder, n *yaml.Node) recipes.Op {
	var u Upload
	d.Fields("upload", n,
		recipes.Field{Key: "src", Required: true, Decode: func(v *yaml.Node) { u.Src = d.FilesHostFile("upload.src", v, "; use copy_in for directories") }},
		recipes.Field{Key: "dest", Required: true, Decode: func(v *yaml.Node) { u.Dest = d.FilesTarget("upload.dest", v) }},
		recipes.Field{Key: "mode", Decode: func(v *yaml.Node) { u.Mode = d.Mode("upload.mode", v) }},
		recipes.Field{Key: "owner", Decode: func(v *yaml.Node) { u.Owner = d.Owner("upload.owner", v) }},
	)
	return &u
}
