package steps

import (
	"fmt"
	"os"
	"strings"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/recipes"
)

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
