package main

import (
	"embed"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/imgbake/imgbake/bake"
	"github.com/imgbake/imgbake/internal/clidocs"
	"github.com/imgbake/imgbake/internal/manpage"
)

// The completion scripts ask imgbake itself (urfave/cli's
// --generate-bash-completion) what comes next.
//
//go:embed completion/imgbake.bash completion/_imgbake
var completionScripts embed.FS

func completionCommand() *cli.Command {
	return &cli.Command{
		Name:        "completion",
		Usage:       "print the bash or zsh completion script",
		ArgsUsage:   "bash|zsh",
		Description: clidocs.Text("completion"),
		Action: func(c *cli.Context) error {
			files := map[string]string{"bash": "completion/imgbake.bash", "zsh": "completion/_imgbake"}
			file, ok := files[c.Args().First()]
			if c.NArg() != 1 || !ok {
				return usageErr("usage: imgbake completion bash|zsh")
			}
			b, err := completionScripts.ReadFile(file)
			if err != nil {
				return err
			}
			_, err = c.App.Writer.Write(b)
			return err
		},
	}
}

// genManCommand writes the man pages; `make man` runs it at build time.
func genManCommand() *cli.Command {
	return &cli.Command{
		Name:      "gen-man",
		Hidden:    true,
		Usage:     "write the man pages imgbake.1 and imgbake-recipe.5 into DIR",
		ArgsUsage: "DIR",
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageErr("usage: imgbake gen-man DIR")
			}
			// $SOURCE_DATE_EPOCH (the Makefile passes the commit's time):
			// a rebuild of the same commit makes the same pages.
			h, err := manpage.NewHeader("imgbake "+bake.Version, os.Getenv("SOURCE_DATE_EPOCH"), time.Now())
			if err != nil {
				return withCode(ExitUsage, err)
			}
			recipe, err := manpage.Recipe(h)
			if err != nil {
				return err
			}
			pages := map[string][]byte{
				"imgbake.1":        manpage.Command(newApp(stdioOf(c)), h, clidocs.ManSections()...),
				"imgbake-recipe.5": recipe,
			}
			dir := c.Args().First()
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			for name, b := range pages {
				if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
					return fmt.Errorf("gen-man: %w", err)
				}
			}
			return nil
		},
	}
}
