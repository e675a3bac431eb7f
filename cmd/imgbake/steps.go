package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/imgbake/imgbake/recipes"
)

// stepDocs documents each step kind with an example, for `imgbake steps`.
var stepDocs = map[string]string{
	"hostname": "hostname: baked                       # /etc/hostname and the 127.0.1.1 line of /etc/hosts",
	"run":      "run: echo hello > /root/hello         # /bin/sh -c inside the image (chroot)",
	"write":    "write: {path: /etc/motd, content: \"Welcome\\n\", mode: \"0644\", owner: root:root}",
	"mkdir":    "mkdir: {path: /opt/app, mode: \"0755\", owner: root:root}   # parents too",
	"copy_in":  "copy_in: {src: ./files, dest: /opt/app}     # host file/dir (relative to the recipe) into image dir",
	"copy_out": "copy_out: {src: /etc/os-release, dest: ./out} # image file/dir into host dir",
	"delete":   "delete: /root/hello                   # file or directory tree; missing is ok",
}

func stepsCommand() *cli.Command {
	return &cli.Command{
		Name:  "steps",
		Usage: "list the recipe step kinds with examples",
		Action: func(c *cli.Context) error {
			w := c.App.Writer
			fmt.Fprintln(w, "Common fields on every step: name, timeout (e.g. 30s), ignore_errors.")
			for _, k := range recipes.Kinds() {
				doc := stepDocs[k]
				if doc == "" {
					doc = k + ": ..."
				}
				fmt.Fprintf(w, "  - %s\n", doc)
			}
			return nil
		},
	}
}
