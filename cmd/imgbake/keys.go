package main

import (
	"os"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/imgbake/imgbake/bake"
)

// keyFlag is --key, shared by every command that opens an image.
func keyFlag() cli.Flag {
	return &cli.StringSliceFlag{Name: "key", Usage: "open LUKS volumes with `SELECTOR:key:PASSPHRASE` or SELECTOR:file:FILE " +
		"(SELECTOR: all, a device such as /dev/sda3, or the LUKS UUID; repeatable; on a terminal imgbake asks for missing ones)"}
}

// keyOptions reads --key into o and, when stdin is a terminal, lets bake
// ask for the passphrase of a volume no --key opens.
func keyOptions(c *cli.Context, stdio Stdio, o bake.Options) (bake.Options, error) {
	for _, s := range c.StringSlice("key") {
		k, err := bake.ParseKey(s)
		if err != nil {
			return o, err
		}
		o.Keys = append(o.Keys, k)
	}
	in, ok := stdio.In.(*os.File)
	errf, ok2 := stdio.Err.(*os.File)
	if ok && ok2 && isTerminal(in) {
		o.KeyPrompt = bake.TerminalKeyPrompt(errf, func() ([]byte, error) { return term.ReadPassword(int(in.Fd())) })
	}
	return o, nil
}
