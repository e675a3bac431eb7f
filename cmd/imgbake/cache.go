package main

import (
	"fmt"

	"github.com/dustin/go-humanize"
	"github.com/urfave/cli/v2"

	"github.com/imgbake/imgbake/bake"
	"github.com/imgbake/imgbake/internal/clidocs"
	"github.com/imgbake/imgbake/internal/report"
)

func cacheCommand() *cli.Command {
	dir := &cli.StringFlag{Name: "cache-dir", Usage: "layer cache `DIR` (default: layers/ in the imgbake cache directory)"}
	return &cli.Command{
		Name:        "cache",
		Usage:       "look at and free the step-layer cache of `run --cache`",
		Description: clidocs.Text("cache"),
		Subcommands: []*cli.Command{
			{
				Name:        "ls",
				Usage:       "list the cached steps, most recently used first",
				Description: clidocs.Text("cache ls"),
				Flags:       []cli.Flag{dir},
				Action: func(c *cli.Context) error {
					store, err := bake.OpenLayerCache(c.String("cache-dir"))
					if err != nil {
						return err
					}
					entries, err := store.List()
					if err != nil {
						return err
					}
					size, _ := store.Size()
					report.LayerCache(c.App.Writer, entries, size, store.Dir)
					return nil
				},
			},
			{
				Name:        "prune",
				Usage:       "remove the least recently used layers until the cache fits --max-size",
				Description: clidocs.Text("cache prune"),
				Flags:       []cli.Flag{dir, &cli.StringFlag{Name: "max-size", Value: "10GiB", Usage: "keep at most `SIZE` of layers (0 empties the cache)"}},
				Action: func(c *cli.Context) error {
					limit, err := humanize.ParseBytes(c.String("max-size"))
					if err != nil {
						return usageErr("--max-size %q: %v", c.String("max-size"), err)
					}
					store, err := bake.OpenLayerCache(c.String("cache-dir"))
					if err != nil {
						return err
					}
					res, err := store.Prune(int64(limit))
					if err != nil {
						return err
					}
					fmt.Fprintf(c.App.Writer, "removed %d entries and %d layers (%s); %s left\n", res.Entries, res.Layers,
						humanize.IBytes(uint64(res.Freed)), humanize.IBytes(uint64(res.Left)))
					return nil
				},
			},
		},
	}
}
