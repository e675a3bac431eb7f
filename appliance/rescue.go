package appliance

import (
	"bufio"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/u-root/u-root/pkg/cpio"

	"github.com/imgbake/imgbake/appliance/proto"
)

// The appliance carries its own rescue tools, taken from the host's
// packages: filesystem checkers, lvm and a shell, so that fsck and a rescue
// shell work on any image, even one whose own tools are broken. Programs go
// to proto.RescueBinDir, their shared libraries (resolved through ELF
// DT_NEEDED) to proto.RescueLibDir. The directories the host's loader
// searches are symlinked to proto.RescueLibDir and the program interpreter
// (the dynamic loader) is kept at its path, so the programs start with no
// environment at all; RescueEnv is still the safest environment to run
// them with.

// RescueEnv is the environment for commands that run in the appliance
// itself (not chrooted) and use the rescue tools.
func RescueEnv() []string {
	return []string{"PATH=" + proto.RescueBinDir + ":/usr/sbin:/usr/bin:/sbin:/bin", "LD_LIBRARY_PATH=" + proto.RescueLibDir}
}

// rescueTool is one host program and the extra names it answers to.
type rescueTool struct {
	name  string   // name in proto.RescueBinDir
	paths []string // where the host may have it
	links []string // more names (symlinks to name)
	pkg   string   // Debian package, for messages
}

var rescueTools = []rescueTool{
	{"e2fsck", []string{"/usr/sbin/e2fsck", "/sbin/e2fsck"}, []string{"fsck.ext2", "fsck.ext3", "fsck.ext4"}, "e2fsprogs"},
	{"tune2fs", []string{"/usr/sbin/tune2fs", "/sbin/tune2fs"}, []string{"e2label"}, "e2fsprogs"},
	{"dumpe2fs", []string{"/usr/sbin/dumpe2fs", "/sbin/dumpe2fs"}, nil, "e2fsprogs"},
	{"debugfs", []string{"/usr/sbin/debugfs", "/sbin/debugfs"}, nil, "e2fsprogs"},
	{"xfs_repair", []string{"/usr/sbin/xfs_repair", "/sbin/xfs_repair"}, nil, "xfsprogs"},
	{"fsck.fat", []string{"/usr/sbin/fsck.fat", "/sbin/fsck.fat"}, []string{"fsck.vfat", "fsck.msdos", "dosfsck"}, "dosfstools"},
	{"lvm", []string{"/usr/sbin/lvm", "/sbin/lvm"}, []string{"pvs", "vgs", "lvs", "pvscan", "vgscan", "lvscan", "vgchange", "lvchange", "vgdisplay", "lvdisplay", "pvdisplay"}, "lvm2"},
	{"blkid", []string{"/usr/sbin/blkid", "/sbin/blkid"}, nil, "util-linux"},
	{"resize2fs", []string{"/usr/sbin/resize2fs", "/sbin/resize2fs"}, nil, "e2fsprogs"},
	{"xfs_growfs", []string{"/usr/sbin/xfs_growfs", "/sbin/xfs_growfs"}, nil, "xfsprogs"},
	{"btrfs", []string{"/usr/bin/btrfs", "/bin/btrfs", "/sbin/btrfs"}, nil, "btrfs-progs"},
}

// busyboxPaths are where a static busybox may be (Debian: busybox-static).
var busyboxPaths = []string{"/bin/busybox", "/usr/bin/busybox"}

// busyboxApplets are linked into proto.RescueBinDir when busybox has them (and no
// real tool of that name is there): a shell and the basics to look around.
var busyboxApplets = strings.Fields(`sh ash ls cat cp mv rm mkdir rmdir ln chmod chown chroot echo printf
	grep egrep fgrep sed awk vi less more head tail find xargs mount umount df du ps kill dmesg stat free
	hexdump xxd od sync sleep test [ [[ env true false wc sort uniq cut tr dd id touch uname lsmod mknod
	losetup fdisk clear reset which readlink realpath basename dirname date diff cmp md5sum sha256sum tar
	gzip gunzip zcat strings mountpoint swapon swapoff blockdev fsck pwd tee yes seq expr cpio lsof top`)

// RescueInfo says what went into the appliance's rescue part.
type RescueInfo struct {
	Tools   []string `json:"tools"`             // programs in proto.RescueBinDir (not counting busybox applets)
	Libs    []string `json:"libs"`              // shared libraries in proto.RescueLibDir
	Applets int      `json:"applets,omitempty"` // busybox applets linked
	Missing []string `json:"missing,omitempty"` // tools not found on the host, with their package
	Bytes   int64    `json:"bytes"`             // file bytes added to the initramfs
}

// rescueSet is the rescue part ready to go into the initramfs.
type rescueSet struct {
	info    RescueInfo
	records []cpio.Record
	digest  []byte // sha256 over every record: part of the appliance key
}

// collectRescue gathers the host's rescue tools with their libraries. A
// missing tool is recorded, not an error: the appliance still works, and
// fsck says which tool it lacks.
func collectRescue() (*rescueSet, error) {
	rs := &rescueSet{}
	r := &libResolver{found: map[string]string{}, dirs: map[string]bool{}, confDirs: ldSoConfDirs("/etc/ld.so.conf", 0)}
	files := map[string][]byte{} // initramfs path → contents
	links := map[string]string{} // initramfs path → symlink target
	interps := map[string]bool{} // program interpreters
	var elfs []string            // host files whose libraries are needed
	add := func(name, host string) error {
		data, err := os.ReadFile(host)
		if err != nil {
			return err
		}
		files[name] = data
		return nil
	}
	for _, t := range rescueTools {
		host := firstExisting(t.paths)
		if host == "" {
			rs.info.Missing = append(rs.info.Missing, fmt.Sprintf("%s (%s)", t.name, t.pkg))
			continue
		}
		if err := add(path.Join(proto.RescueBinDir, t.name), host); err != nil {
			return nil, fmt.Errorf("rescue tool %s: %w", host, err)
		}
		for _, l := range t.links {
			links[path.Join(proto.RescueBinDir, l)] = t.name
		}
		rs.info.Tools = append(rs.info.Tools, t.name)
		elfs = append(elfs, host)
	}
	if bb := firstExisting(busyboxPaths); bb != "" {
		if err := add(path.Join(proto.RescueBinDir, "busybox"), bb); err != nil {
			return nil, fmt.Errorf("rescue shell %s: %w", bb, err)
		}
		rs.info.Tools = append(rs.info.Tools, "busybox")
		elfs = append(elfs, bb)
		have := busyboxList(bb)
		for _, a := range busyboxApplets {
			name := path.Join(proto.RescueBinDir, a)
			if _, taken := files[name]; taken || (have != nil && !have[a]) {
				continue
			}
			if _, taken := links[name]; taken {
				continue
			}
			links[name] = "busybox"
			rs.info.Applets++
		}
		// The appliance's own /bin/sh, for commands run outside the image.
		links["/bin/sh"] = path.Join(proto.RescueBinDir, "busybox")
	} else {
		rs.info.Missing = append(rs.info.Missing, "busybox (busybox-static)")
	}
	for _, host := range elfs {
		interp, err := r.resolve(host)
		if err != nil {
			return nil, fmt.Errorf("rescue tool %s: %w", host, err)
		}
		if interp != "" {
			interps[interp] = true
		}
	}
	for soname, host := range r.found {
		if err := add(path.Join(proto.RescueLibDir, soname), host); err != nil {
			return nil, fmt.Errorf("library %s: %w", host, err)
		}
		rs.info.Libs = append(rs.info.Libs, soname)
	}
	// The loader finds proto.RescueLibDir through its system directories.
	for dir := range r.dirs {
		if linkableLibDir(dir) {
			links[dir] = proto.RescueLibDir
		}
	}
	// The interpreter stays at its path (the kernel reads it from there):
	// a link to the copy in proto.RescueLibDir, or the file itself.
	for interp := range interps {
		inLib := path.Join(proto.RescueLibDir, path.Base(interp))
		if _, ok := files[inLib]; !ok {
			if err := add(inLib, interp); err != nil {
				return nil, fmt.Errorf("program interpreter %s: %w", interp, err)
			}
			rs.info.Libs = append(rs.info.Libs, path.Base(interp))
		}
		if !underLink(path.Dir(interp), links) {
			links[interp] = inLib
		}
	}
	sort.Strings(rs.info.Tools)
	sort.Strings(rs.info.Libs)
	h := sha256.New()
	for _, name := range sortedMapKeys(files) {
		sum := sha256.Sum256(files[name])
		fmt.Fprintf(h, "file %s %s\n", name, hex.EncodeToString(sum[:]))
		rs.records = append(rs.records, cpio.StaticRecord(files[name], cpio.Info{Name: strings.TrimPrefix(name, "/"), Mode: unixRegular | 0o755}))
		rs.info.Bytes += int64(len(files[name]))
	}
	for _, name := range sortedMapKeys(links) {
		fmt.Fprintf(h, "link %s %s\n", name, links[name])
		rs.records = append(rs.records, cpio.Symlink(strings.TrimPrefix(name, "/"), links[name]))
	}
	rs.digest = h.Sum(nil)
	return rs, nil
}

// linkableLibDir says whether a host library directory may become a
// symlink to proto.RescueLibDir: not / or the plain lib directories, which hold
// other things in the initramfs (/lib/modules).
func linkableLibDir(dir string) bool {
	switch dir {
	case "/", "/lib", "/usr", "/usr/lib", "/rescue", proto.RescueLibDir, proto.RescueBinDir, "/bin", "/sbin", "/usr/bin", "/usr/sbin", "/etc":
		return false
	}
	return strings.Count(dir, "/") >= 1
}

// underLink reports whether p is a symlinked directory or below one.
func underLink(p string, links map[string]string) bool {
	for ; p != "/" && p != "."; p = path.Dir(p) {
		if _, ok := links[p]; ok {
			return true
		}
	}
	return false
}

func firstExisting(paths []string) string {
	for _, p := range paths {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p
		}
	}
	return ""
}

// busyboxList returns the applets busybox was built with, or nil when it
// cannot tell (then every applet in busyboxApplets is linked).
func busyboxList(bb string) map[string]bool {
	out, err := exec.Command(bb, "--list").Output()
	if err != nil {
		return nil
	}
	m := map[string]bool{}
	for _, a := range strings.Fields(string(out)) {
		m[a] = true
	}
	return m
}

func sortedMapKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// libResolver finds the shared libraries of ELF programs the way the
// dynamic loader would: DT_RUNPATH/DT_RPATH, the directories of
// /etc/ld.so.conf, then the standard directories, taking only libraries of
// the program's class and machine.
type libResolver struct {
	found    map[string]string // soname → host path
	dirs     map[string]bool   // host directories libraries came from
	confDirs []string
}

// resolve adds the libraries of the ELF file host (recursively) and returns
// its program interpreter ("" for a static program).
func (r *libResolver) resolve(host string) (string, error) {
	f, err := elf.Open(host)
	if err != nil {
		return "", err
	}
	defer f.Close()
	interp := ""
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b, err := io.ReadAll(io.LimitReader(p.Open(), 4096))
			if err != nil {
				return "", fmt.Errorf("reading PT_INTERP: %w", err)
			}
			interp = strings.TrimRight(string(b), "\x00")
		}
	}
	return interp, r.addNeeded(f, host, 0)
}

func (r *libResolver) addNeeded(f *elf.File, host string, depth int) error {
	if depth > 32 {
		return errors.New("library dependencies nest too deeply")
	}
	needed, err := f.DynString(elf.DT_NEEDED)
	if err != nil {
		return fmt.Errorf("%s: %w", host, err)
	}
	var runpath []string
	for _, tag := range []elf.DynTag{elf.DT_RUNPATH, elf.DT_RPATH} {
		vals, _ := f.DynString(tag)
		for _, v := range vals {
			for _, d := range strings.Split(v, ":") {
				d = strings.ReplaceAll(strings.ReplaceAll(d, "${ORIGIN}", filepath.Dir(host)), "$ORIGIN", filepath.Dir(host))
				if d != "" {
					runpath = append(runpath, d)
				}
			}
		}
	}
	for _, soname := range needed {
		if _, ok := r.found[soname]; ok {
			continue
		}
		if strings.Contains(soname, "/") {
			return fmt.Errorf("%s needs %q: library paths are not supported", host, soname)
		}
		lib, dir, lf := r.find(soname, runpath, f.Class, f.Machine)
		if lib == "" {
			return fmt.Errorf("%s needs %s, which is not found on this host", host, soname)
		}
		r.found[soname] = lib
		r.dirs[dir] = true
		err := r.addNeeded(lf, lib, depth+1)
		lf.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// find looks soname up; the returned *elf.File is open.
func (r *libResolver) find(soname string, runpath []string, class elf.Class, machine elf.Machine) (string, string, *elf.File) {
	dirs := append(append(append([]string{}, runpath...), r.confDirs...), defaultLibDirs(machine)...)
	for _, d := range dirs {
		p := filepath.Join(d, soname)
		lf, err := elf.Open(p)
		if err != nil {
			continue
		}
		if lf.Class != class || lf.Machine != machine {
			lf.Close()
			continue
		}
		return p, filepath.Clean(d), lf
	}
	return "", "", nil
}

// defaultLibDirs are the directories the loader searches without a cache.
func defaultLibDirs(m elf.Machine) []string {
	triplet := map[elf.Machine]string{elf.EM_X86_64: "x86_64-linux-gnu", elf.EM_AARCH64: "aarch64-linux-gnu",
		elf.EM_386: "i386-linux-gnu", elf.EM_PPC64: "powerpc64le-linux-gnu", elf.EM_S390: "s390x-linux-gnu",
		elf.EM_RISCV: "riscv64-linux-gnu"}[m]
	var out []string
	if triplet != "" {
		out = append(out, "/lib/"+triplet, "/usr/lib/"+triplet)
	}
	return append(out, "/lib64", "/usr/lib64", "/lib", "/usr/lib")
}

// ldSoConfDirs reads the directories of an ld.so.conf, following include
// lines (with globs).
func ldSoConfDirs(file string, depth int) []string {
	if depth > 8 {
		return nil
	}
	f, err := os.Open(file)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		line = strings.TrimSpace(line)
		switch {
		case line == "":
		case strings.HasPrefix(line, "include ") || strings.HasPrefix(line, "include\t"):
			pat := strings.TrimSpace(line[len("include"):])
			if !filepath.IsAbs(pat) {
				pat = filepath.Join(filepath.Dir(file), pat)
			}
			matches, _ := filepath.Glob(pat)
			sort.Strings(matches)
			for _, m := range matches {
				out = append(out, ldSoConfDirs(m, depth+1)...)
			}
		case strings.HasPrefix(line, "/"):
			out = append(out, filepath.Clean(strings.Fields(line)[0]))
		}
	}
	return out
}
