package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/recipes"
)

func init() {
	registerStep("ssh_inject", `ssh_inject: {user: root, file: ./id_ed25519.pub}   # or key: "ssh-ed25519 AAAA..."; appended to ~/.ssh/authorized_keys`,
		func(ctx context.Context, r *runner, st recipes.Step) (fsops.Result, error) {
			op := st.Op.(*recipes.SSHInject)
			keys := []string{op.Key}
			if op.File != "" {
				var err error
				if keys, err = readKeyFile(op.File); err != nil {
					return fsops.Result{}, err
				}
			}
			return fsops.AuthorizeKeys(ctx, r.sess, op.User, keys)
		})
}

// readKeyFile returns the keys of a public key file: one per non-blank,
// non-comment line.
func readKeyFile(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var keys []string
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if err := recipes.CheckSSHKey(line); err != nil {
			return nil, fmt.Errorf("%s line %d: %v", path, i+1, err)
		}
		keys = append(keys, line)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s holds no public key", path)
	}
	return keys, nil
}
