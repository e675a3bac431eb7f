package main

import (
	"context"
	"path"
	"strings"

	"github.com/imgbake/imgbake/bake"
	"github.com/urfave/cli/v2"
)

// Helpers shared by the one-shot commands that look at or repair an image
// (ls, cat, copy-in, copy-out, edit, reset-password, fstab, fsck).

// roFlag is --ro for commands that only read: they always open the image
// read-only, the flag just says so.
func roFlag() cli.Flag {
	return &cli.BoolFlag{Name: "ro", Usage: "open the image read-only (always the case for this command)"}
}

// writeROFlag is --ro for commands that write: asking for a read-only open
// is then a usage error, reported before anything is touched.
func writeROFlag() cli.Flag {
	return &cli.BoolFlag{Name: "ro", Usage: "refused: this command writes to the image"}
}

func rejectRO(c *cli.Context) error {
	if c.Bool("ro") {
		return usageErr("%s writes to the image and cannot run with --ro (the image is unchanged)", c.Command.Name)
	}
	return nil
}

// imagePathArgs checks the command's PATH... arguments (at least one)
// with imagePathArg.
func imagePathArgs(c *cli.Context) ([]string, error) {
	if err := needArgs(c, 1, "PATH..."); err != nil {
		return nil, err
	}
	paths := make([]string, 0, c.NArg())
	for _, a := range c.Args().Slice() {
		p, err := imagePathArg(a)
		if err != nil {
			return nil, err
		}
		paths = append(paths, p)
	}
	return paths, nil
}

// imagePathArg checks a path inside the image given on the command line:
// it must be absolute. It is cleaned, so /../../etc/passwd is /etc/passwd of
// the image (and the agent resolves every path inside the image's root
// anyway, symlinks included).
func imagePathArg(arg string) (string, error) {
	if strings.IndexByte(arg, 0) >= 0 {
		return "", usageErr("%q: a path must not contain a NUL byte", arg)
	}
	if !strings.HasPrefix(arg, "/") {
		return "", usageErr("%q: paths inside the image must be absolute (e.g. /etc/fstab)", arg)
	}
	return path.Clean(arg), nil
}

// opFailed marks an operation that failed inside the image (exit 1).
func opFailed(ctx context.Context, err error) error { return bake.OperationFailed(ctx, err) }

// stdioOf returns the command's streams.
func stdioOf(c *cli.Context) Stdio {
	return Stdio{In: c.App.Reader, Out: c.App.Writer, Err: c.App.ErrWriter}
}

// needArgs checks the number of positional arguments. (Flags after them
// were moved before them: cliargs.Reorder.)
func needArgs(c *cli.Context, min int, usage string) error {
	if c.NArg() < min {
		return usageErr("usage: imgbake %s [flags] %s", c.Command.Name, usage)
	}
	return nil
}
