package agent

import (
	"context"
	"debug/elf"
	"encoding/json"
	"io/fs"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/imgbake/imgbake/appliance/distro"
	"github.com/imgbake/imgbake/appliance/proto"
	"github.com/imgbake/imgbake/internal/filemode"
)

func (a *Agent) handleInspect(_ context.Context, _ *stream, _ json.RawMessage) (any, error) {
	rootfd, err := a.root()
	if err != nil {
		return nil, err
	}
	img := imageFiles{rootfd}
	rel, _ := distro.Identify(img)
	info := proto.OSInfo{ID: rel.ID, VersionID: rel.VersionID, PrettyName: rel.PrettyName, IDLike: rel.IDLike,
		Family: distro.Family(rel.ID, rel.IDLike), ReleaseFile: rel.File, OSRelease: rel.OSRelease}
	if info.OSRelease == nil {
		info.OSRelease = map[string]string{}
	}
	info.Hostname = hostnameAt(rootfd)
	info.Arch = a.imageArch()
	pk := distro.PackagesOf(img, rel)
	info.PackageManager, info.PackageFormat, info.PackageDB = pk.Manager, pk.Format, pk.Database
	return info, nil
}

// imageFiles is the OS root at fd as package distro reads it: every path
// resolved inside it (RESOLVE_IN_ROOT), only regular files read.
type imageFiles struct{ rootfd int }

func (f imageFiles) ReadFile(p string, limit int64) ([]byte, error) {
	return readFileAt(f.rootfd, p, limit)
}

func (f imageFiles) Stat(p string) (fs.FileMode, error) {
	fd, st, err := openPathInRoot(f.rootfd, p)
	if err != nil {
		return 0, err
	}
	unix.Close(fd)
	return filemode.FromUnix(st.Mode), nil
}

// hostnameAt reads the host name configured in the OS rooted at fd.
func hostnameAt(fd int) string {
	for _, p := range []string{"/etc/hostname", "/etc/HOSTNAME"} {
		if data, err := readFileAt(fd, p, 4096); err == nil {
			for _, line := range strings.Split(string(data), "\n") {
				if l := strings.TrimSpace(line); l != "" && l[0] != '#' {
					return l
				}
			}
		}
	}
	if data, err := readFileAt(fd, "/etc/sysconfig/network", 64<<10); err == nil {
		if v, ok := distro.ParseOSRelease(data)["HOSTNAME"]; ok {
			return v
		}
	}
	return ""
}

// imageArch reads the ELF machine of the image's own binaries.
func (a *Agent) imageArch() string {
	rootfd, err := a.root()
	if err != nil {
		return ""
	}
	for _, p := range []string{"/bin/sh", "/usr/bin/env", "/bin/ls", "/sbin/init"} {
		fd, err := openInRoot(rootfd, p, unix.O_RDONLY, 0)
		if err != nil {
			continue
		}
		f := fileFromFD(fd, p)
		ef, err := elf.NewFile(f)
		if err != nil {
			f.Close()
			continue
		}
		m := ef.Machine
		f.Close()
		switch m {
		case elf.EM_X86_64:
			return "x86_64"
		case elf.EM_386:
			return "i386"
		case elf.EM_AARCH64:
			return "aarch64"
		case elf.EM_ARM:
			return "arm"
		case elf.EM_PPC64:
			return "ppc64le"
		case elf.EM_S390:
			return "s390x"
		case elf.EM_RISCV:
			return "riscv64"
		default:
			return strings.ToLower(strings.TrimPrefix(m.String(), "EM_"))
		}
	}
	return ""
}
