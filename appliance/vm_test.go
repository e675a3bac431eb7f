package appliance

import (
	"context"
	"testing"
	"time"

	"github.com/imgbake/imgbake/appliance/proto"
	"github.com/imgbake/imgbake/internal/vmtest"
)

// vmTest skips unless IMGBAKE_VM_TESTS=1: these boot the real appliance.
// With it set, a missing qemu, kernel or agent fails the test.
func vmTest(t *testing.T) *Appliance {
	t.Helper()
	vmtest.Gate(t)
	requireAppliance(t)
	vmtest.LookPath(t, (&QEMU{}).binary(), "qemu-system-x86")
	app, err := Build(BuildOptions{})
	if err != nil {
		t.Fatalf("building appliance: %v", err)
	}
	return app
}

func TestBootWithoutDisk(t *testing.T) {
	app := vmTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	before := Boots()
	s, err := Start(ctx, app, WithVerbose(t.Logf))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("timings: %+v", s.Timings)
	r, err := s.Hello(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r.Version == "" || r.Kernel != app.Kernel.Version {
		t.Errorf("hello = %+v, want kernel %s", r, app.Kernel.Version)
	}
	if _, err := s.Mount(ctx, proto.MountArgs{}); err == nil {
		t.Errorf("mount with no disk succeeded")
	} else {
		t.Logf("mount with no disk: %v", err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := Boots() - before; got != 1 {
		t.Errorf("boots = %d, want 1", got)
	}
	select {
	case <-s.Done():
	default:
		t.Error("qemu still running after Close")
	}
}
