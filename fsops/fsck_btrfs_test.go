package fsops_test

import (
	"context"
	"strings"
	"testing"

	"github.com/imgbake/imgbake/appliance/proto"
	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/fsops/fsopstest"
)

// TestFsckBtrfs: btrfs check --readonly decides; --repair runs only when
// it found errors and is confirmed by a second read-only check; a check
// that could not open the filesystem is a failure, not errors found.
func TestFsckBtrfs(t *testing.T) {
	fs := proto.Filesystem{Device: "/dev/vda2", Type: "btrfs"}
	for _, tc := range []struct {
		name    string
		repair  bool
		replies []fsopstest.Reply // in the order the commands run
		status  string
		calls   []string
	}{
		{"clean", false, []fsopstest.Reply{{RC: 0}}, fsops.FsckClean, []string{"check --readonly /dev/vda2"}},
		{"clean, --repair runs nothing more", true, []fsopstest.Reply{{RC: 0}}, fsops.FsckClean,
			[]string{"check --readonly /dev/vda2"}},
		{"errors found", false, []fsopstest.Reply{{RC: 1, Stderr: "ERROR: errors found in fs roots\n"}}, fsops.FsckErrorsFound,
			[]string{"check --readonly /dev/vda2"}},
		{"not a filesystem", true, []fsopstest.Reply{{RC: 1, Stderr: "No valid Btrfs found on /dev/vda2\nERROR: cannot open file system\n"}},
			fsops.FsckFailed, []string{"check --readonly /dev/vda2"}},
		{"repaired", true, []fsopstest.Reply{{RC: 1, Stderr: "ERROR: errors found in extent allocation tree\n"}, {RC: 0}, {RC: 0}},
			fsops.FsckRepaired, []string{"check --readonly /dev/vda2", "check --repair /dev/vda2", "check --readonly /dev/vda2"}},
		{"errors remain", true, []fsopstest.Reply{{RC: 1}, {RC: 1}, {RC: 1}}, fsops.FsckErrorsRemain,
			[]string{"check --readonly /dev/vda2", "check --repair /dev/vda2", "check --readonly /dev/vda2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := 0
			s := fsopstest.New(t, t.TempDir(), func(c fsopstest.Call) fsopstest.Reply {
				if n >= len(tc.replies) {
					t.Fatalf("unexpected command %q", c.Line())
				}
				n++
				return tc.replies[n-1]
			})
			r, err := fsops.Fsck(context.Background(), s, fs, fsops.FsckOptions{Repair: tc.repair})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, c := range s.Calls() {
				if !strings.HasSuffix(c.Argv[0], "/btrfs") {
					t.Errorf("ran %s, not the appliance's btrfs", c.Argv[0])
				}
				got = append(got, strings.Join(c.Argv[1:], " "))
			}
			if r.Status != tc.status || r.Tool != "btrfs" || strings.Join(got, "; ") != strings.Join(tc.calls, "; ") {
				t.Errorf("status %q tool %q calls %q; want %q, %q", r.Status, r.Tool, got, tc.status, tc.calls)
			}
		})
	}
}
