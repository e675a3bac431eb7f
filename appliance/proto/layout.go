package proto

import "strings"

// The appliance's layout: what the host puts where when it starts the
// appliance and builds its initramfs, and where the agent looks for it.

// ChannelName is the name of the virtio-serial port the host creates for
// the channel and the agent opens.
const ChannelName = "org.imgbake.channel.0"

// Sysroot is where the agent mounts the image inside the appliance (a
// command run with ExecArgs.NoChroot sees the image there).
const Sysroot = "/sysroot"

// DefaultPath is the PATH commands run with in the image (ExecArgs.Env may
// set another): the agent finds a command named without a '/' in these
// directories, and the host looks for the image's programs there.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// DefaultPathDirs are DefaultPath's directories, in order.
func DefaultPathDirs() []string { return strings.Split(DefaultPath, ":") }

// RescueBinDir and RescueLibDir hold the appliance's rescue tools and their
// libraries when the host built the initramfs with them; the agent finds
// commands in RescueBinDir when it runs them outside the image.
const (
	RescueBinDir = "/rescue/bin"
	RescueLibDir = "/rescue/lib"
)

// DataAlign is the alignment of every DataRange offset on the data disk:
// the agent reads it with O_DIRECT.
const DataAlign = 4096

// ModuleList is where the initramfs lists the kernel modules the agent
// loads, one ModuleListLine a module, dependencies first.
const ModuleList = "/etc/imgbake/modules"

// Module load groups of the module list. The agent loads ModulesBoot at
// start and the others on first use; a group named by a filesystem type
// ("xfs", "vfat", ...) holds that filesystem's drivers and is loaded when
// one is mounted.
const (
	ModulesBoot = "boot"
	ModulesNet  = "net" // when the network is brought up
	ModulesDM   = "dm"  // device-mapper, when LVM volumes are activated
)

// ModuleListLine is the module list's line for the module file at path
// (inside the appliance) in group.
func ModuleListLine(group, path string) string { return group + " " + path + "\n" }

// ModulesOf returns the module files the module list lists for group, in
// its order.
func ModulesOf(list []byte, group string) []string {
	var out []string
	for line := range strings.Lines(string(list)) {
		g, p, ok := strings.Cut(strings.TrimSpace(line), " ")
		if ok && g == group {
			out = append(out, p)
		}
	}
	return out
}
