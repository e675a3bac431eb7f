package main

// Rebuilding an installed package as a .deb.

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// statusFields are dpkg-query -s fields that describe the installation,
// not the package: they do not belong in a control file.
var statusFields = map[string]bool{
	"Status": true, "Conffiles": true, "Config-Version": true,
	"Triggers-Pending": true, "Triggers-Awaited": true,
}

// controlFromStatus turns `dpkg-query -s` output into a control file.
func controlFromStatus(status []byte) []byte {
	var out bytes.Buffer
	keep := true
	for _, line := range strings.SplitAfter(string(status), "\n") {
		if line == "" || line == "\n" {
			continue
		}
		if line[0] != ' ' && line[0] != '\t' {
			name, _, _ := strings.Cut(line, ":")
			keep = !statusFields[name]
		}
		if keep {
			out.WriteString(line)
		}
	}
	if out.Len() > 0 && !bytes.HasSuffix(out.Bytes(), []byte("\n")) {
		out.WriteByte('\n')
	}
	return out.Bytes()
}

// controlScripts are the control files dpkg keeps in its info directory
// as PKG.NAME, executable ones first.
var controlScripts = []struct {
	name string
	mode uint32
}{
	{"preinst", 0o755}, {"postinst", 0o755}, {"prerm", 0o755}, {"postrm", 0o755}, {"config", 0o755},
	{"templates", 0o644}, {"triggers", 0o644}, {"shlibs", 0o644}, {"symbols", 0o644},
}

// repack stages p's files and control files under stage (created) and
// builds its .deb into debDir, returning the .deb's path.
func repack(p *pkgInfo, stage, debDir string) (string, error) {
	status, err := exec.Command("dpkg-query", "-s", p.BinaryPackage).Output()
	if err != nil {
		return "", fmt.Errorf("dpkg-query -s: %w", err)
	}
	list, err := exec.Command("dpkg-query", "-L", p.BinaryPackage).Output()
	if err != nil {
		return "", fmt.Errorf("dpkg-query -L: %w", err)
	}
	if err := os.Mkdir(stage, 0o755); err != nil {
		return "", err
	}
	s := &stager{base: stage}
	sums, missing, err := s.stageFiles(parseFileList(list))
	if err != nil {
		return "", err
	}
	if missing > 0 {
		fmt.Fprintf(os.Stderr, "hostdebs: %s: %d listed files are not on the host (left out)\n", p.BinaryPackage, missing)
	}
	control := filepath.Join(stage, "DEBIAN")
	if err := os.Mkdir(control, 0o755); err != nil {
		return "", err
	}
	if err := writeNew(filepath.Join(control, "control"), controlFromStatus(status), 0o644); err != nil {
		return "", err
	}
	if len(sums) > 0 {
		if err := writeNew(filepath.Join(control, "md5sums"), []byte(strings.Join(sums, "")), 0o644); err != nil {
			return "", err
		}
	}
	info := filepath.Join(hostAdminDir, "info", p.BinaryPackage)
	if conffiles, err := os.ReadFile(info + ".conffiles"); err == nil {
		if kept := s.presentConffiles(conffiles); len(kept) > 0 {
			if err := writeNew(filepath.Join(control, "conffiles"), kept, 0o644); err != nil {
				return "", err
			}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	for _, cs := range controlScripts {
		data, err := os.ReadFile(info + "." + cs.name)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		if err := writeNew(filepath.Join(control, cs.name), data, cs.mode); err != nil {
			return "", err
		}
	}
	version := p.Version
	if i := strings.IndexByte(version, ':'); i >= 0 {
		version = version[i+1:]
	}
	deb := filepath.Join(debDir, fmt.Sprintf("%s_%s_%s.deb", p.Name, version, p.Arch))
	// Not --root-owner-group: the files keep the owners they have on the
	// host. -Znone: the .debs are installed once and thrown away.
	if out, err := exec.Command("dpkg-deb", "--build", "-Znone", stage, deb).CombinedOutput(); err != nil {
		return "", fmt.Errorf("dpkg-deb --build: %v: %s", err, bytes.TrimSpace(out))
	}
	return deb, nil
}

// parseFileList returns the absolute paths of `dpkg-query -L` output (its
// diversion notes and the root "/." left out).
func parseFileList(out []byte) []string {
	var paths []string
	for _, line := range strings.Split(string(out), "\n") {
		if !strings.HasPrefix(line, "/") || line == "/." {
			continue
		}
		paths = append(paths, filepath.Clean(line))
	}
	return paths
}

// stager copies host files into the staging tree base. Every path it
// writes is inside base, reached through directories it made itself,
// never through a symlink, and never overwrites anything.
type stager struct {
	base string
}

// target maps the absolute host path p into the staging tree.
func (s *stager) target(p string) (string, error) {
	clean := filepath.Clean(p)
	if !filepath.IsAbs(clean) || clean == "/" {
		return "", fmt.Errorf("path %q is not an absolute file path", p)
	}
	t := filepath.Join(s.base, clean)
	if !strings.HasPrefix(t, s.base+"/") {
		return "", fmt.Errorf("path %q leaves the staging tree", p)
	}
	return t, nil
}

// mergedUsrAliases are the top-level directories that a merged-/usr
// system has as symlinks into /usr, while packages ship them as
// directories.
var mergedUsrAliases = map[string]bool{
	"/bin": true, "/sbin": true, "/lib": true, "/lib32": true, "/lib64": true, "/libx32": true, "/libo32": true,
}

// stageFiles copies paths (absolute host paths, as dpkg lists them) and
// returns the md5sums lines of the regular files and how many paths were
// missing on the host. A path that is a symlink on the host but was a
// directory in the package (a merged-/usr alias such as /lib, or one with
// listed paths below it) is staged as a directory: staged as a symlink, it
// would replace the root's own.
func (s *stager) stageFiles(paths []string) ([]string, int, error) {
	dirInPackage := map[string]bool{}
	for _, p := range paths {
		for d := filepath.Dir(p); d != "/"; d = filepath.Dir(d) {
			dirInPackage[d] = true
		}
	}
	for d := range mergedUsrAliases {
		dirInPackage[d] = true
	}
	var sums []string
	missing := 0
	for _, p := range paths {
		fi, err := os.Lstat(p)
		if errors.Is(err, os.ErrNotExist) {
			missing++
			continue
		}
		if err != nil {
			return nil, 0, err
		}
		if fi.Mode()&os.ModeSymlink != 0 && dirInPackage[p] {
			if fi, err = os.Stat(p); err != nil {
				return nil, 0, err
			}
		}
		switch {
		case fi.IsDir():
			err = s.dir(p, fi)
		case fi.Mode()&os.ModeSymlink != 0:
			err = s.symlink(p, fi)
		case fi.Mode().IsRegular():
			var sum string
			sum, err = s.file(p, fi)
			sums = append(sums, sum+"  "+strings.TrimPrefix(p, "/")+"\n")
		default:
			err = fmt.Errorf("%s: unsupported file type %v", p, fi.Mode().Type())
		}
		if err != nil {
			return nil, 0, err
		}
	}
	return sums, missing, nil
}

// parent makes sure the staging directory for p's parent exists (with the
// host's modes and owners), and returns p's staging path.
func (s *stager) parent(p string) (string, error) {
	t, err := s.target(p)
	if err != nil {
		return "", err
	}
	if d := filepath.Dir(p); d != "/" {
		fi, err := os.Stat(d) // follow: /lib of a merged-/usr host is a directory in packages
		if err != nil {
			return "", err
		}
		if err := s.dir(d, fi); err != nil {
			return "", err
		}
	}
	return t, nil
}

// dir stages the directory p with fi's mode and owner; an existing one
// (staged before) is left as it is, provided it is a real directory.
func (s *stager) dir(p string, fi os.FileInfo) error {
	t, err := s.parent(p)
	if err != nil {
		return err
	}
	if got, err := os.Lstat(t); err == nil {
		if !got.IsDir() {
			return fmt.Errorf("%s: staged as a non-directory already", p)
		}
		return nil
	}
	if err := os.Mkdir(t, 0o700); err != nil {
		return err
	}
	return setMeta(t, fi, false)
}

func (s *stager) symlink(p string, fi os.FileInfo) error {
	t, err := s.parent(p)
	if err != nil {
		return err
	}
	if _, err := os.Lstat(t); err == nil {
		return nil // listed twice
	}
	link, err := os.Readlink(p)
	if err != nil {
		return err
	}
	if err := os.Symlink(link, t); err != nil {
		return err
	}
	st := fi.Sys().(*syscall.Stat_t)
	return os.Lchown(t, int(st.Uid), int(st.Gid))
}

// file copies the regular file p and returns its MD5 in hex.
func (s *stager) file(p string, fi os.FileInfo) (string, error) {
	t, err := s.parent(p)
	if err != nil {
		return "", err
	}
	src, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer src.Close()
	dst, err := os.OpenFile(t, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return "", err
	}
	h := md5.New()
	_, err = io.Copy(io.MultiWriter(dst, h), src)
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("copying %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), setMeta(t, fi, true)
}

// setMeta gives the staged t the owner and exact mode bits (setuid,
// setgid, sticky included) of the host file described by fi, and a
// regular file its modification time.
func setMeta(t string, fi os.FileInfo, regular bool) error {
	st := fi.Sys().(*syscall.Stat_t)
	// chown before chmod: chown clears setuid and setgid.
	if err := os.Lchown(t, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	if err := syscall.Chmod(t, st.Mode&0o7777); err != nil {
		return fmt.Errorf("chmod %s: %w", t, err)
	}
	if regular {
		return os.Chtimes(t, time.Now(), fi.ModTime())
	}
	return nil
}

// presentConffiles keeps the lines of a conffiles file whose path (the
// last field; flags such as remove-on-upgrade come first) was staged:
// dpkg-deb refuses a conffile the package does not contain.
func (s *stager) presentConffiles(conffiles []byte) []byte {
	var out bytes.Buffer
	for _, line := range strings.Split(string(conffiles), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		t, err := s.target(f[len(f)-1])
		if err != nil {
			continue
		}
		if _, err := os.Lstat(t); err == nil {
			out.WriteString(line + "\n")
		}
	}
	return out.Bytes()
}

// writeNew creates the file p (which must not exist) with data and mode.
func writeNew(p string, data []byte, mode uint32) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return syscall.Chmod(p, mode)
}
