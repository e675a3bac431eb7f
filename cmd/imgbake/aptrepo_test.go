package main

import (
	"fmt"
	"testing"

	"github.com/imgbake/imgbake/testimages"
)

// The package-step tests install from a local APT repository served by
// the test process, never from the Debian archive: they must pass with no
// network at all (and with one). Its packages are test fixtures, tiny
// shell scripts named after the Debian packages the tests and the
// provision example ask for.
var (
	helloFixture = testimages.DebPackage{
		Name: "hello", Version: "2.10-imgbake1", Description: "test fixture standing in for Debian's hello",
		Files: []testimages.DebFile{{Path: "/usr/bin/hello", Mode: 0o755,
			Content: "#!/bin/sh\n# imgbake test fixture standing in for Debian's hello\necho 'Hello, world!'\n"}},
	}
	havegedFixture = testimages.DebPackage{
		Name: "haveged", Version: "1.9.14-imgbake1", Description: "test fixture standing in for Debian's haveged",
		Files: []testimages.DebFile{{Path: "/usr/sbin/haveged", Mode: 0o755,
			Content: "#!/bin/sh\n# imgbake test fixture standing in for Debian's haveged: it only has to be installed\nexit 0\n"}},
	}
)

// testAptRepo serves the fixtures until the test ends.
func testAptRepo(t *testing.T) *testimages.AptRepo {
	t.Helper()
	return testimages.ServeAptRepo(t, helloFixture, havegedFixture)
}

// debPath is the URL path under which the repository serves p's .deb.
func debPath(p testimages.DebPackage) string { return "/" + p.FileName() }

// localAptStep is a recipe step (YAML, indented for a steps: list) that
// makes repo the image's only APT source: sources.list is replaced and
// sources.list.d emptied (the debootstrapped test images have nothing
// there, but an image with a deb822 debian.sources would).
func localAptStep(repo *testimages.AptRepo) string {
	return fmt.Sprintf("  - name: the tests' local APT repository as the only source\n"+
		"    run: \"rm -rf /etc/apt/sources.list.d/* && echo '%s' > /etc/apt/sources.list\"\n", repo.SourcesLine())
}
