package report

import (
	"fmt"
	"io"

	"github.com/imgbake/imgbake/bake"
)

// VersionInfo is `imgbake version --json`: the build, then the host.
type VersionInfo struct {
	bake.Build
	bake.Host
}

// WriteVersion writes `imgbake version` for people.
func WriteVersion(w io.Writer, r VersionInfo) {
	commit := r.Commit
	if commit == "" {
		commit = "unknown commit"
	}
	fmt.Fprintf(w, "imgbake %s (%s, %s, %s)\n", r.Version, commit, r.GoVersion, r.Platform)
	tool := func(name string, t bake.HostTool) {
		if !t.Found {
			fmt.Fprintf(w, "%-8s not found: %s\n", name+":", t.Error)
			return
		}
		fmt.Fprintf(w, "%-8s %s (%s)\n", name+":", t.Path, t.Version)
	}
	tool("qemu", r.QEMU)
	tool("kernel", r.Kernel)
	accel := r.KVM.Accel
	if r.KVM.Note != "" {
		accel += " (" + r.KVM.Note + ")"
	}
	fmt.Fprintf(w, "%-8s %s\n", "accel:", accel)
}
