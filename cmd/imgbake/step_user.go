package main

import (
	"context"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/recipes"
)

func init() {
	registerStep("user", `user: {name: ops, groups: [sudo], shell: /bin/bash, ssh_authorized_keys: ["ssh-ed25519 AAAA... ops@example"], sudo: true}  # also uid, home, password`,
		func(ctx context.Context, r *runner, st recipes.Step) (fsops.Result, error) {
			op := st.Op.(*recipes.User)
			spec := fsops.UserSpec{Name: op.Name, UID: op.UID, Groups: op.Groups, Shell: op.Shell, Home: op.Home,
				Keys: op.SSHAuthorizedKeys, Sudo: op.Sudo}
			note := ""
			if op.Password != nil {
				pw, n, err := resolveSecret(*op.Password)
				if err != nil {
					return fsops.Result{}, err
				}
				spec.Password, note = &pw, n
			}
			res, err := fsops.EnsureUser(ctx, r.sess, spec)
			res.Detail = joinNotes(res.Detail, note)
			return res, err
		})
}
