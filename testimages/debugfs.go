package testimages

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
)

// debugfs runs one debugfs request against the view's filesystem (read-only).
func (v *view) debugfs(req string) (stdout, stderr []byte, err error) {
	cmd := exec.Command("debugfs", "-R", req, v.device())
	cmd.Env = append(os.Environ(), "DEBUGFS_PAGER=__none__", "PAGER=__none__")
	var o, e bytes.Buffer
	cmd.Stdout = &o
	cmd.Stderr = &e
	err = cmd.Run()
	return o.Bytes(), e.Bytes(), err
}

// debugfsQuote quotes a path for debugfs's request parser (ss library).
func debugfsQuote(p string) string {
	return `"` + strings.ReplaceAll(p, `"`, `""`) + `"`
}

func (v *view) debugfsLstat(path string) (FileInfo, error) {
	if !strings.HasPrefix(path, "/") {
		return FileInfo{}, fmt.Errorf("testimages: path %q is not absolute", path)
	}
	if strings.ContainsAny(path, "\n\x00") {
		return FileInfo{}, fmt.Errorf("testimages: unsupported path %q", path)
	}
	out, errOut, err := v.debugfs("stat " + debugfsQuote(path))
	if err != nil {
		return FileInfo{}, fmt.Errorf("testimages: debugfs stat %s: %v: %s", path, err, errOut)
	}
	if !bytes.Contains(out, []byte("Inode:")) {
		msg := strings.TrimSpace(string(errOut))
		// Drop the version banner.
		if i := strings.IndexByte(msg, '\n'); strings.HasPrefix(msg, "debugfs ") && i >= 0 {
			msg = strings.TrimSpace(msg[i+1:])
		} else if strings.HasPrefix(msg, "debugfs ") {
			msg = ""
		}
		if strings.Contains(msg, "not found") {
			return FileInfo{}, &fs.PathError{Op: "stat", Path: path, Err: fs.ErrNotExist}
		}
		if strings.Contains(msg, "not a directory") {
			return FileInfo{}, &fs.PathError{Op: "stat", Path: path, Err: syscall.ENOTDIR}
		}
		return FileInfo{}, fmt.Errorf("testimages: debugfs stat %s: %s", path, msg)
	}
	fi, err := parseDebugfsStat(out)
	if err != nil {
		return FileInfo{}, fmt.Errorf("testimages: debugfs stat %s: %v", path, err)
	}
	if fi.IsSymlink && fi.Target == "" && fi.Size > 0 {
		// A slow symlink: its target is the content of its data block.
		data, errOut, err := v.debugfs("cat " + debugfsQuote(path))
		if err != nil {
			return FileInfo{}, fmt.Errorf("testimages: debugfs cat %s: %v: %s", path, err, errOut)
		}
		if int64(len(data)) < fi.Size {
			return FileInfo{}, fmt.Errorf("testimages: debugfs: short symlink target for %s", path)
		}
		fi.Target = string(data[:fi.Size])
	}
	return fi, nil
}

var (
	reDebugfsType  = regexp.MustCompile(`Type: ([a-zA-Z]+(?: special)?)\s+Mode:\s+([0-7]+)`)
	reDebugfsOwner = regexp.MustCompile(`User:\s+(\d+)\s+Group:\s+(\d+)`)
	reDebugfsSize  = regexp.MustCompile(`\bSize:\s+(\d+)`)
	reDebugfsLink  = regexp.MustCompile(`(?m)^\s*Fast link dest: "(.*)"\s*$`)
)

// parseDebugfsStat parses the output of debugfs's stat command.
func parseDebugfsStat(out []byte) (FileInfo, error) {
	var fi FileInfo
	m := reDebugfsType.FindSubmatch(out)
	if m == nil {
		return fi, fmt.Errorf("no Type/Mode in %q", firstLine(out))
	}
	switch string(m[1]) {
	case "regular":
		fi.Mode = sIFREG
	case "directory":
		fi.Mode = sIFDIR
		fi.IsDir = true
	case "symlink":
		fi.Mode = sIFLNK
		fi.IsSymlink = true
	case "character special":
		fi.Mode = sIFCHR
	case "block special":
		fi.Mode = sIFBLK
	case "FIFO":
		fi.Mode = sIFIFO
	case "socket":
		fi.Mode = sIFSOCK
	default:
		return fi, fmt.Errorf("unknown file type %q", m[1])
	}
	perm, err := strconv.ParseUint(string(m[2]), 8, 32)
	if err != nil {
		return fi, err
	}
	fi.Mode |= uint32(perm) & 07777
	m = reDebugfsOwner.FindSubmatch(out)
	if m == nil {
		return fi, fmt.Errorf("no User/Group")
	}
	uid, _ := strconv.ParseUint(string(m[1]), 10, 32)
	gid, _ := strconv.ParseUint(string(m[2]), 10, 32)
	fi.UID, fi.GID = uint32(uid), uint32(gid)
	m = reDebugfsSize.FindSubmatch(out)
	if m == nil {
		return fi, fmt.Errorf("no Size")
	}
	fi.Size, _ = strconv.ParseInt(string(m[1]), 10, 64)
	if fi.IsSymlink {
		if m := reDebugfsLink.FindSubmatch(out); m != nil {
			fi.Target = string(m[1])
		}
	}
	return fi, nil
}

func firstLine(b []byte) string {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// debugfsResolve follows symlinks (intermediate ones are followed by
// debugfs's own lookup, relative to the filesystem root) until path names a
// non-symlink, and returns that path and its stat.
func (v *view) debugfsResolve(path string) (string, FileInfo, error) {
	p := path
	for i := 0; i < 40; i++ {
		fi, err := v.debugfsLstat(p)
		if err != nil {
			return p, fi, err
		}
		if !fi.IsSymlink {
			return p, fi, nil
		}
		if strings.HasPrefix(fi.Target, "/") {
			p = fi.Target
		} else {
			// Not cleaned on purpose: debugfs resolves "dir/../x" physically
			// (following symlinks in dir before applying ..), as the kernel does.
			p = p[:strings.LastIndexByte(p, '/')+1] + fi.Target
		}
	}
	return p, FileInfo{}, &fs.PathError{Op: "open", Path: path, Err: syscall.ELOOP}
}

func (v *view) debugfsReadFiles(paths []string) (map[string][]byte, error) {
	res := make(map[string][]byte, len(paths))
	for _, path := range paths {
		if _, done := res[path]; done {
			continue
		}
		p, fi, err := v.debugfsResolve(path)
		if err != nil {
			if isNotExist(err) {
				continue
			}
			return res, err
		}
		if fi.IsDir {
			return res, &fs.PathError{Op: "read", Path: path, Err: syscall.EISDIR}
		}
		if !fi.IsRegular() {
			return res, fmt.Errorf("testimages: %s is not a regular file (mode %o)", path, fi.Mode)
		}
		data, errOut, err := v.debugfs("cat " + debugfsQuote(p))
		if err != nil {
			return res, fmt.Errorf("testimages: debugfs cat %s: %v: %s", path, err, errOut)
		}
		if int64(len(data)) != fi.Size {
			return res, fmt.Errorf("testimages: debugfs cat %s: got %d bytes, inode size %d: %s", path, len(data), fi.Size, errOut)
		}
		res[path] = data
	}
	return res, nil
}

func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
