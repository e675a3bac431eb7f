package bake

import (
	"context"
	"os"
	"runtime"
	"runtime/debug"

	"github.com/imgbake/imgbake/appliance"
)

// Version is imgbake's release version. `make build` sets it from
// `git describe` (scripts/version.sh) with -ldflags -X; a plain `go build`
// leaves the agent protocol's version.
var Version = appliance.AgentVersion

// Commit is the git commit imgbake was built from, set by `make build`
// like Version; when it is not, BuildInfo falls back to what the Go
// toolchain recorded (go build inside a git checkout).
var Commit = ""

// Build says what this binary is.
type Build struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"` // "" when unknown; "-dirty" marks uncommitted changes
	GoVersion string `json:"go_version"`
	Platform  string `json:"platform"` // GOOS/GOARCH
}

// BuildInfo returns Version, Commit and the toolchain that built imgbake.
func BuildInfo() Build {
	b := Build{Version: Version, Commit: Commit, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if b.Commit != "" {
		return b
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		var modified bool
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				b.Commit = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if b.Commit != "" && modified {
			b.Commit += "-dirty"
		}
	}
	return b
}

// Host is what this machine offers a run, for `imgbake version`: each part
// found or the reason it is not.
type Host struct {
	QEMU   HostTool `json:"qemu"`
	Kernel HostTool `json:"kernel"`
	KVM    HostKVM  `json:"kvm"`
}

// HostTool is a program or file imgbake needs on the host.
type HostTool struct {
	Found   bool   `json:"found"`
	Path    string `json:"path,omitempty"`
	Version string `json:"version,omitempty"`
	Error   string `json:"error,omitempty"`
}

// HostKVM says whether runs would use KVM, decided as a run decides it
// (appliance.ResolveAccel: /dev/kvm must open and a kernel boot under it).
type HostKVM struct {
	Usable bool   `json:"usable"`
	Accel  string `json:"accel"`          // what a run would use: kvm or tcg
	Note   string `json:"note,omitempty"` // why not KVM, when /dev/kvm is there
}

// DescribeHost finds the qemu and kernel a run would use (kernel "" picks
// the host's, as --kernel does) and whether KVM works. It builds nothing;
// the KVM check may boot the kernel once per host boot, as a run would.
func DescribeHost(ctx context.Context, kernel string) Host {
	var h Host
	if path, version, err := appliance.FindQEMU(ctx); err != nil {
		h.QEMU = HostTool{Path: path, Error: err.Error()}
	} else {
		h.QEMU = HostTool{Found: true, Path: path, Version: version}
	}
	k, err := appliance.FindKernel(kernel)
	if err != nil {
		h.Kernel = HostTool{Error: err.Error()}
		h.KVM.Accel, h.KVM.Note = appliance.ResolveAccel(ctx, kernel)
	} else {
		h.Kernel = HostTool{Found: true, Path: k.Image, Version: k.Version}
		h.KVM.Accel, h.KVM.Note = appliance.ResolveAccel(ctx, k.Image)
	}
	h.KVM.Usable = h.KVM.Accel == "kvm"
	if env := os.Getenv("IMGBAKE_ACCEL"); env != "" {
		h.KVM.Note = "chosen by IMGBAKE_ACCEL=" + env + ", not checked"
	}
	return h
}
