package report

import (
	"fmt"
	"io"
	"strings"

	"github.com/imgbake/imgbake/bake"
)

// Appliance writes what `imgbake appliance info` shows of the appliance a
// run with memoryMiB of memory would use.
func Appliance(w io.Writer, app *bake.Appliance, memoryMiB int) {
	m := app.Manifest
	fmt.Fprintf(w, "key:        %s\n", app.Key)
	fmt.Fprintf(w, "kernel:     %s (%s)\n", app.Kernel.Image, app.Kernel.Version)
	fmt.Fprintf(w, "initramfs:  %s (%s)\n", app.Initramfs, bake.HumanSize(app.Size))
	fmt.Fprintf(w, "agent:      sha256 %s (version %s)\n", m.AgentSHA256[:16], bake.Version)
	fmt.Fprintf(w, "modules:    %d\n", len(m.Modules))
	for _, mod := range m.Modules {
		fmt.Fprintf(w, "            %s\n", mod)
	}
	fmt.Fprintf(w, "rescue:     %s (%s: the initramfs plus %s of rescue tools, for fsck and the rescue shell)\n",
		app.RescueInitramfs, bake.HumanSize(app.RescueSize), bake.HumanSize(m.Rescue.Bytes))
	fmt.Fprintf(w, "            tools %s; %d libraries, %d busybox applets\n", strings.Join(m.Rescue.Tools, ", "), len(m.Rescue.Libs), m.Rescue.Applets)
	if len(m.Rescue.Missing) > 0 {
		fmt.Fprintf(w, "            not on this host (install to include): %s\n", strings.Join(m.Rescue.Missing, ", "))
	}
	accel := app.Accel
	if app.AccelNote != "" {
		accel += " (" + app.AccelNote + ")"
	}
	fmt.Fprintf(w, "accel:      %s\n", accel)
	if app.Snapshot != "" {
		fmt.Fprintf(w, "snapshot:   %s (%s, warm start)\n", app.Snapshot, bake.HumanSize(app.SnapshotSize))
	} else {
		fmt.Fprintf(w, "snapshot:   none yet for %d MiB (saved on the next start; warm start restores it)\n", memoryMiB)
	}
	fmt.Fprintf(w, "built:      %s\n", m.Created.Format("2006-01-02 15:04:05 MST"))
}
