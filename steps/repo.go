package steps

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"
	"strings"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/recipes"
	"go.yaml.in/yaml/v3"
)

// Repo adds a package repository (and its signing key) the way the
// image's package manager keeps them; see fsops.Repo.
type Repo struct {
	Name        string
	Description string
	URL         string
	Key         string // absolute host path of the signing key; "" for none
	Trusted     bool
	Suite       string   // apt only
	Components  []string // apt only
}

// maxRepoKey bounds a signing key read from the host: keys are kilobytes.
const maxRepoKey = 1 << 20

func init() {
	register(Kind{Name: "repo", Idempotent: true, Decode: decodeRepo,
		Example: `repo: {name: example, url: "https://pkgs.example.com/debian", suite: bookworm, components: [main], key: ./example.asc}   # apt .sources + keyring, dnf/zypper .repo, pacman.conf section; pick per family with when:`,
		Apply: func(ctx context.Context, env Env, st recipes.Step) (fsops.Result, error) {
			op := st.Op.(*Repo)
			spec := fsops.RepoSpec{Name: op.Name, Description: op.Description, URL: op.URL, Trusted: op.Trusted,
				Suite: op.Suite, Components: op.Components}
			if op.Key != "" {
				key, err := readRepoKey(op.Key)
				if err != nil {
					return fsops.Result{}, err
				}
				spec.Key = key
			}
			return fsops.Repo(ctx, env.Session, env.Facts.PackageManager, spec)
		},
	})
}

func (*Repo) Kind() string       { return "repo" }
func (r *Repo) Describe() string { return "repo: " + r.Name + " " + r.URL }

var (
	repoName      = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	repoComponent = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/+-]*$`)
	repoURLScheme = []string{"http", "https", "ftp", "file"}
)

func decodeRepo(d *recipes.Decoder, n *yaml.Node) recipes.Op {
	var r Repo
	var trustedNode, keyNode *yaml.Node
	d.Fields("repo", n,
		recipes.Field{Key: "name", Required: true, Decode: func(v *yaml.Node) {
			name, ok := d.Str("repo.name", v)
			if ok && !repoName.MatchString(name) {
				d.Errorf(v, "repo.name: %s may only contain letters, digits, '.', '_' and '-' (it names the repository's file and section), at most 64", recipes.Quote(name))
			}
			r.Name = name
		}},
		recipes.Field{Key: "description", Decode: func(v *yaml.Node) { r.Description = d.SingleLine("repo.description", "description", v) }},
		recipes.Field{Key: "url", Required: true, Decode: func(v *yaml.Node) {
			s := d.SingleLine("repo.url", "url", v)
			if s != "" {
				if err := checkRepoURL(s); err != nil {
					d.Errorf(v, "repo.url: %s: %v", recipes.Quote(s), err)
				}
			}
			r.URL = s
		}},
		recipes.Field{Key: "key", Decode: func(v *yaml.Node) {
			keyNode = v
			r.Key = d.FilesHostFile("repo.key", v, "")
		}},
		recipes.Field{Key: "trusted", Decode: func(v *yaml.Node) { trustedNode = v; r.Trusted = d.Bool("repo.trusted", v) }},
		recipes.Field{Key: "suite", Decode: func(v *yaml.Node) {
			s := d.SingleLine("repo.suite", "suite", v)
			if s != "" && !repoComponent.MatchString(s) && s != "./" {
				d.Errorf(v, "repo.suite: %s is not an apt suite (a codename such as bookworm, or a path ending in / for a flat repository)", recipes.Quote(s))
			}
			r.Suite = s
		}},
		recipes.Field{Key: "components", Decode: func(v *yaml.Node) {
			r.Components = d.StringList("repo.components", v, func(ctx string, n *yaml.Node) string {
				s, ok := d.Str(ctx, n)
				if ok && !repoComponent.MatchString(s) {
					d.Errorf(n, "%s: %s is not an apt component (main, contrib, ...)", ctx, recipes.Quote(s))
				}
				return s
			})
		}},
	)
	if r.Trusted && keyNode != nil {
		d.Errorf(trustedNode, "repo.trusted: a repository with a key is checked against it; give key or trusted: true, not both")
	}
	if len(r.Components) > 0 && strings.HasSuffix(r.Suite, "/") {
		d.Errorf(n, "repo: a flat repository (suite %s) has no components", recipes.Quote(r.Suite))
	}
	return &r
}

// checkRepoURL accepts the absolute URLs every family's configuration can
// hold: no spaces, a scheme all of apt, librepo, zypper and pacman fetch.
func checkRepoURL(s string) error {
	if strings.ContainsAny(s, " \t") {
		return fmt.Errorf("a URL has no spaces (encode them as %%20)")
	}
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	for _, scheme := range repoURLScheme {
		if u.Scheme == scheme {
			if scheme != "file" && u.Host == "" {
				return fmt.Errorf("no host")
			}
			if scheme == "file" && !strings.HasPrefix(u.Path, "/") {
				return fmt.Errorf("a file: URL needs an absolute path (file:///srv/repo)")
			}
			return nil
		}
	}
	return fmt.Errorf("want an http, https, ftp or file URL")
}

func readRepoKey(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("repo key: %w", err)
	}
	defer f.Close()
	key, err := io.ReadAll(io.LimitReader(f, maxRepoKey+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("repo key %s: %w", path, err)
	case len(key) > maxRepoKey:
		return nil, fmt.Errorf("repo key %s: more than %d bytes, too large for a signing key", path, maxRepoKey)
	case len(key) == 0:
		return nil, fmt.Errorf("repo key %s is empty", path)
	}
	return key, nil
}
