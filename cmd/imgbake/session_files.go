package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/imgbake/imgbake/internal/clidocs"
	"github.com/imgbake/imgbake/internal/filemode"
	"github.com/imgbake/imgbake/session"
	"github.com/imgbake/imgbake/session/api"
)

func sessionPutCommand() *cli.Command {
	return &cli.Command{
		Name:        "put",
		Usage:       "copy a host file or directory into the session's image (HOSTPATH - reads standard input)",
		ArgsUsage:   "NAME HOSTPATH IMAGEPATH",
		Description: clidocs.Text("session put"),
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "exact", Usage: "IMAGEPATH names the file itself, never a directory to put it into"},
			&cli.StringFlag{Name: "mode", Usage: "octal `MODE` of the file written (default: kept, or the source's)"},
			&cli.StringFlag{Name: "owner", Usage: "`USER[:GROUP]` of the file written, resolved in the image"},
		},
		Action: func(c *cli.Context) error {
			stdio := stdioOf(c)
			if c.NArg() != 3 {
				return usageErr("session put: expected NAME HOSTPATH IMAGEPATH")
			}
			name, host, img := c.Args().Get(0), c.Args().Get(1), c.Args().Get(2)
			if !strings.HasPrefix(img, "/") {
				return usageErr("session put: %s: image paths must be absolute", img)
			}
			req := api.Request{Op: api.OpPut, Image: img, Exact: c.Bool("exact"), Owner: c.String("owner")}
			if m := c.String("mode"); m != "" {
				mode, err := parseUnixMode(m)
				if err != nil {
					return err
				}
				req.Mode = &mode
			}
			var in io.Reader
			if host == "-" {
				in = stdio.In
			} else {
				abs, err := filepath.Abs(host)
				if err != nil {
					return err
				}
				if _, err := os.Stat(abs); err != nil {
					return withCode(ExitUsage, err)
				}
				req.Host = abs
			}
			return exitStatus(session.Do(c.Context, name, req, in, stdio.Out, stdio.Err))
		},
	}
}

// parseUnixMode parses an octal mode such as 0644 or 4755.
func parseUnixMode(s string) (uint32, error) {
	m, err := filemode.Parse(s)
	if err != nil {
		return 0, usageErr("--mode %q: expected an octal mode such as 0644", s)
	}
	return m, nil
}

func sessionFetchCommand() *cli.Command {
	return &cli.Command{
		Name:        "fetch",
		Usage:       "copy a file or directory out of the session's image (HOSTPATH - writes a file to standard output)",
		ArgsUsage:   "NAME IMAGEPATH HOSTPATH",
		Description: clidocs.Text("session fetch"),
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "exact", Usage: "HOSTPATH names the file itself, never a directory to put it into"},
		},
		Action: func(c *cli.Context) error {
			stdio := stdioOf(c)
			if c.NArg() != 3 {
				return usageErr("session fetch: expected NAME IMAGEPATH HOSTPATH")
			}
			name, img, host := c.Args().Get(0), c.Args().Get(1), c.Args().Get(2)
			if !strings.HasPrefix(img, "/") {
				return usageErr("session fetch: %s: image paths must be absolute", img)
			}
			req := api.Request{Op: api.OpFetch, Image: img, Exact: c.Bool("exact")}
			if host != "-" {
				abs, err := filepath.Abs(host)
				if err != nil {
					return err
				}
				req.Host = abs
				if strings.HasSuffix(host, "/") {
					req.Host += "/"
				}
			}
			return exitStatus(session.Do(c.Context, name, req, nil, stdio.Out, stdio.Err))
		},
	}
}
