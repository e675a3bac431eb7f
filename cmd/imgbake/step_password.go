package main

import (
	"context"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/recipes"
)

func init() {
	registerStep("password", `password: {user: ops, random: ./ops-password.txt}   # or password: / file: (first line); hashed by the image's chpasswd`,
		func(ctx context.Context, r *runner, st recipes.Step) (fsops.Result, error) {
			op := st.Op.(*recipes.Password)
			pw, note, err := resolveSecret(op.Secret)
			if err != nil {
				return fsops.Result{}, err
			}
			res, err := fsops.SetPassword(ctx, r.sess, op.User, pw)
			res.Detail = joinNotes(res.Detail, note)
			return res, err
		})
}

// resolveSecret returns the plain-text password a recipe asks for. A random
// one is generated and written to its host file (0600) first, so that it
// is never lost, even if a later step fails. When that file already holds
// a password from an earlier run it is used again: re-running the recipe
// then changes nothing, and the file keeps matching the image. Delete the
// file to get a new password.
func resolveSecret(sec recipes.Secret) (password, note string, err error) {
	switch sec.Source() {
	case "file":
		pw, err := fsops.ReadSecretFile(sec.File)
		return pw, "", err
	case "random":
		if pw, err := fsops.ReadSecretFile(sec.Random); err == nil && pw != "" {
			return pw, "password from " + sec.Random, nil
		}
		pw := fsops.GeneratePassphrase()
		if err := fsops.WriteSecretFile(sec.Random, pw); err != nil {
			return "", "", err
		}
		return pw, "new random password in " + sec.Random, nil
	}
	return sec.Password, "", nil
}

func joinNotes(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "; " + b
}
