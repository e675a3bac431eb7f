package agent

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/imgbake/imgbake/appliance/proto"
)

func (a *Agent) handleInspect(_ context.Context, _ *stream, _ json.RawMessage) (any, error) {
	rootfd, err := a.root()
	if err != nil {
		return nil, err
	}
	info := proto.OSInfo{OSRelease: map[string]string{}}
	if rel, ok := osReleaseAt(rootfd); ok {
		info.OSRelease = rel
	}
	info.ID = info.OSRelease["ID"]
	info.VersionID = info.OSRelease["VERSION_ID"]
	info.PrettyName = info.OSRelease["PRETTY_NAME"]
	info.IDLike = strings.Fields(info.OSRelease["ID_LIKE"])
	info.Hostname = hostnameAt(rootfd)
	info.Arch = a.imageArch()
	info.PackageManager = a.packageManager()
	return info, nil
}

func parseOSRelease(data []byte) map[string]string {
	m := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		if uq, err := strconv.Unquote(v); err == nil {
			v = uq
		} else {
			v = strings.Trim(v, `"'`)
		}
		m[k] = v
	}
	return m
}

// osReleaseAt reads the os-release of the OS whose root is the directory
// fd; false when there is none.
func osReleaseAt(fd int) (map[string]string, bool) {
	for _, p := range []string{"/etc/os-release", "/usr/lib/os-release"} {
		if data, err := readFileAt(fd, p, 64<<10); err == nil {
			return parseOSRelease(data), true
		}
	}
	return nil, false
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
		if v, ok := parseOSRelease(data)["HOSTNAME"]; ok {
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

// packageManager names the image's package tool by the binaries present
// (proto.PackageManagers).
func (a *Agent) packageManager() string {
	rootfd, err := a.root()
	if err != nil {
		return ""
	}
	for _, c := range proto.PackageManagers {
		var st unix.Stat_t
		fd, err := openInRoot(rootfd, c.Path, unix.O_PATH, 0)
		if err == nil {
			err = unix.Fstat(fd, &st)
			unix.Close(fd)
			if err == nil && st.Mode&unix.S_IFMT == unix.S_IFREG {
				return c.Name
			}
		}
	}
	return ""
}
