package fsops

import (
	"testing"

	"github.com/imgbake/imgbake/appliance/proto"
)

// Every package manager the agent can report has a driver, and no driver
// waits for a name the agent never reports.
func TestPackageManagersDriven(t *testing.T) {
	reported := map[string]bool{}
	for _, pm := range proto.PackageManagers {
		reported[pm.Name] = true
		if _, err := manager(pm.Name); err != nil {
			t.Errorf("the agent reports %q, fsops cannot drive it: %v", pm.Name, err)
		}
	}
	for name := range packageManagers {
		if !reported[name] {
			t.Errorf("fsops drives %q, which the agent never reports", name)
		}
	}
}
