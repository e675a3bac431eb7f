package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/imgbake/imgbake/bake"
	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/internal/clidocs"
)

func resetPasswordCommand() *cli.Command {
	return &cli.Command{
		Name:        "reset-password",
		Usage:       "set a new password for a user of a disk image (a new hash in /etc/shadow)",
		ArgsUsage:   "USER",
		Description: clidocs.Text("reset-password"),
		Flags: append(diskFlags(),
			&cli.StringFlag{Name: "password-file", Usage: "read the new password from the first line of `FILE`"},
			&cli.BoolFlag{Name: "random", Usage: "generate a random passphrase (printed on stdout)"},
			&cli.StringFlag{Name: "random-file", Usage: "with --random: write the passphrase to `FILE` (0600) instead of stdout"},
			writeROFlag(),
		),
		Action: func(c *cli.Context) error {
			stdio := stdioOf(c)
			if c.NArg() != 1 {
				return usageErr("usage: imgbake reset-password [flags] USER")
			}
			if err := rejectRO(c); err != nil {
				return err
			}
			user := c.Args().First()
			if user == "" || strings.ContainsAny(user, ":\n\r\x00/ ") {
				return usageErr("reset-password: %q is not a user name", user)
			}
			random, pwFile, randomFile := c.Bool("random"), c.String("password-file"), c.String("random-file")
			switch {
			case random && pwFile != "":
				return usageErr("reset-password: --password-file and --random exclude each other")
			case randomFile != "" && !random:
				return usageErr("reset-password: --random-file goes with --random")
			}
			var password string
			var err error
			switch {
			case random:
				password = fsops.GeneratePassphrase()
			case pwFile != "":
				if password, err = fsops.ReadSecretFile(pwFile); err != nil {
					return withCode(ExitUsage, err)
				}
			default:
				if password, err = fsops.AskPassword(stdio.In, stdio.Err, user); err != nil {
					return withCode(ExitUsage, err)
				}
			}
			if strings.ContainsAny(password, "\n\r\x00") || password == "" {
				return usageErr("reset-password: a password must be one non-empty line")
			}
			// The passphrase file is written before the image: a password
			// set in the image but lost on the host would lock the user out.
			if randomFile != "" {
				if err := fsops.WriteSecretFile(randomFile, password); err != nil {
					return withCode(ExitUsage, err)
				}
			}
			ctx := c.Context
			op, err := openImage(ctx, c, stdio, bake.Options{})
			if err != nil {
				removeSecret(randomFile)
				return err
			}
			res, err := fsops.ResetPassword(ctx, op.Session(), user, password)
			if err != nil {
				op.Abort()
				removeSecret(randomFile)
				return opFailed(ctx, fmt.Errorf("reset-password %s: %w", user, err))
			}
			if err := op.Finish(ctx, res.Changed); err != nil {
				removeSecret(randomFile)
				return err
			}
			switch {
			case !res.Changed:
				fmt.Fprintf(stdio.Err, "imgbake: %s already has this password; the image is unchanged\n", user)
			case res.Detail != "":
				fmt.Fprintf(stdio.Err, "imgbake: new password set for %s (%s)\n", user, res.Detail)
			default:
				fmt.Fprintf(stdio.Err, "imgbake: new password set for %s\n", user)
			}
			if random && randomFile == "" {
				fmt.Fprintln(stdio.Out, password)
			} else if randomFile != "" {
				fmt.Fprintf(stdio.Err, "imgbake: the new password is in %s\n", randomFile)
			}
			return nil
		},
	}
}

func removeSecret(path string) {
	if path != "" {
		os.Remove(path)
	}
}
