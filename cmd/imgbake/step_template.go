package main

import (
	"context"
	"strings"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/recipes"
)

func init() {
	registerStep("template", `template: {src: templates/site.conf.tmpl, dest: /etc/site.conf, mode: "0644"}  # Go text/template with .vars and .os facts`,
		func(ctx context.Context, r *runner, st recipes.Step) (fsops.Result, error) {
			op := st.Op.(*recipes.Template)
			text, err := op.Render(r.rec.Data(r.facts))
			if err != nil {
				return fsops.Result{}, err
			}
			return fsops.WriteFile(ctx, r.sess, op.Dest, strings.NewReader(text), fsops.WriteOptions{Mode: op.Mode, Owner: op.Owner})
		})
}
