package fsops

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/imgbake/imgbake/appliance"
	"github.com/imgbake/imgbake/appliance/passwd"
	"github.com/imgbake/imgbake/internal/filemode"
)

// maxEditSize bounds the files append_line and edit read into memory.
const maxEditSize = 64 << 20

// resolveFile follows symlinks in p inside the image, so that rewriting a
// linked file (e.g. /etc/resolv.conf) changes its target and keeps the link.
func resolveFile(ctx context.Context, s Session, p string) (string, bool, error) {
	r, err := s.Realpath(ctx, p)
	if err != nil {
		return "", false, err
	}
	return r.Path, r.Exists, nil
}

// AppendLine adds line (without its newline) at the end of the file at p
// unless the file already has exactly that line. A missing file is created
// (0644) holding just the line; an existing one keeps its mode and owner.
// Symlinks are followed inside the image.
func AppendLine(ctx context.Context, s Session, p, line string) (Result, error) {
	real, exists, err := resolveFile(ctx, s, p)
	if err != nil {
		return Result{}, err
	}
	var data []byte
	if exists {
		if data, err = ReadFile(ctx, s, real, maxEditSize); err != nil {
			return Result{}, err
		}
		if hasLine(data, line) {
			return Result{}, nil
		}
	}
	var b bytes.Buffer
	b.Write(data)
	if len(data) > 0 && data[len(data)-1] != '\n' {
		b.WriteByte('\n')
	}
	b.WriteString(line)
	b.WriteByte('\n')
	return WriteFile(ctx, s, real, &b, WriteOptions{})
}

// hasLine reports whether data has a line equal to line (a trailing CR of
// a CRLF file is ignored).
func hasLine(data []byte, line string) bool {
	for l := range strings.Lines(string(data)) {
		l = strings.TrimSuffix(l, "\n")
		if l == line || strings.TrimSuffix(l, "\r") == line {
			return true
		}
	}
	return false
}

// Edit replaces every match of the Go regexp pattern in the file at p with
// replace, which may refer to groups as $1 or ${name}. By default each line
// (without its newline) is matched on its own; with multiline the whole file
// is one text, so (?m) and (?s) decide how ^, $ and . behave. The file must
// exist; it keeps its mode and owner, and is left untouched (unchanged)
// when nothing matches or the result is identical. Symlinks are followed
// inside the image.
func Edit(ctx context.Context, s Session, p, pattern, replace string, multiline bool) (Result, error) {
	re, err := regexp.Compile(pattern)
	if err != nil {
		return Result{}, err
	}
	real, exists, err := resolveFile(ctx, s, p)
	if err != nil {
		return Result{}, err
	}
	if !exists {
		return Result{}, &fs.PathError{Op: "edit", Path: p, Err: fs.ErrNotExist}
	}
	data, err := ReadFile(ctx, s, real, maxEditSize)
	if err != nil {
		return Result{}, err
	}
	out, n := editText(string(data), re, replace, multiline)
	if out == string(data) {
		return Result{}, nil
	}
	res, err := WriteFile(ctx, s, real, strings.NewReader(out), WriteOptions{})
	if multiline {
		res.Detail = plural(n, "match", "matches")
	} else {
		res.Detail = plural(n, "line", "lines") + " changed"
	}
	return res, err
}

// editText applies the replacement, per line or to the whole text, and
// counts the lines changed (per line) or the matches (multiline).
func editText(text string, re *regexp.Regexp, replace string, multiline bool) (string, int) {
	if multiline {
		return re.ReplaceAllString(text, replace), len(re.FindAllStringIndex(text, -1))
	}
	var b strings.Builder
	changed := 0
	for l := range strings.Lines(text) {
		body, nl := strings.CutSuffix(l, "\n")
		out := re.ReplaceAllString(body, replace)
		if out != body {
			changed++
		}
		b.WriteString(out)
		if nl {
			b.WriteByte('\n')
		}
	}
	return b.String(), changed
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

// Upload writes the host file src to the path dest in the image. Without a
// mode, an existing dest keeps its mode and a new one takes src's permission
// bits (never setuid, setgid or sticky), as cp does; without an owner an
// existing dest keeps its owner and a new one is root's. Identical content
// and attributes change nothing.
func Upload(ctx context.Context, s Session, src, dest string, o WriteOptions) (Result, error) {
	f, err := os.Open(src)
	if err != nil {
		return Result{}, fmt.Errorf("upload source: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Result{}, err
	}
	if !fi.Mode().IsRegular() {
		return Result{}, fmt.Errorf("upload source %s is not a regular file", src)
	}
	if o.Mode == nil {
		st, err := s.Stat(ctx, dest)
		if err != nil {
			return Result{}, err
		}
		if !st.Exists || !fs.FileMode(st.Mode).IsRegular() {
			m := fi.Mode().Perm()
			o.Mode = &m
		}
	}
	res, err := WriteFile(ctx, s, dest, io.LimitReader(f, fi.Size()), o)
	if err == nil && res.Changed {
		res.Detail = HumanBytes(fi.Size())
	}
	return res, err
}

// Chmod sets the permission bits of path (a final symlink is followed
// inside the image).
func Chmod(ctx context.Context, s Session, p string, mode fs.FileMode) (Result, error) {
	changed, err := s.Chmod(ctx, p, filemode.ToUnix(mode))
	return Result{Changed: changed}, err
}

// Chown sets the owner of path (user[:group], resolved in the image; a
// user alone gets the user's primary group). A final symlink is followed
// inside the image; mode bits, setuid included, are kept.
func Chown(ctx context.Context, s Session, p, owner string) (Result, error) {
	changed, err := s.Chown(ctx, p, owner)
	return Result{Changed: changed}, err
}

// Move renames src to the path dest (not into dest). A missing src with an
// existing dest counts as done, so a second run is unchanged. A regular
// file is moved across filesystems (e.g. into /boot/efi) by copying it,
// keeping mode and owner, then deleting src; other kinds of file cannot be.
func Move(ctx context.Context, s Session, src, dest string) (Result, error) {
	changed, err := s.Rename(ctx, src, dest)
	if err == nil || !errors.Is(err, syscall.EXDEV) {
		return Result{Changed: changed}, err
	}
	st, serr := s.Stat(ctx, src)
	if serr != nil {
		return Result{}, serr
	}
	if !fs.FileMode(st.Mode).IsRegular() {
		return Result{}, fmt.Errorf("move %s to %s: only regular files can move across filesystems: %w", src, dest, err)
	}
	pr, pw := io.Pipe()
	go func() {
		_, rerr := s.ReadFile(ctx, src, pw)
		pw.CloseWithError(rerr)
	}()
	mode := fs.FileMode(st.Mode)
	_, werr := WriteFile(ctx, s, dest, pr, WriteOptions{Mode: &mode, Owner: fmt.Sprintf("%d:%d", st.UID, st.GID)})
	pr.CloseWithError(errors.New("move stopped"))
	if werr != nil {
		return Result{}, werr
	}
	if _, err := s.Delete(ctx, src, false); err != nil {
		return Result{Changed: true}, err
	}
	return Result{Changed: true, Detail: "copied across filesystems"}, nil
}

// Link makes path a symlink to target (kept verbatim, relative or
// absolute). An existing symlink pointing elsewhere, or a file, is replaced
// atomically; a directory is an error.
func Link(ctx context.Context, s Session, target, p string) (Result, error) {
	changed, err := s.Symlink(ctx, target, p)
	return Result{Changed: changed}, err
}

// Touch creates an empty file (0644, root's) when nothing exists at path.
// An existing path, whatever its type, is left alone: its mtime is NOT
// updated, so that a second run changes nothing.
func Touch(ctx context.Context, s Session, p string) (Result, error) {
	st, err := s.Stat(ctx, p)
	if err != nil {
		return Result{}, err
	}
	if st.Exists {
		return Result{}, nil
	}
	return WriteFile(ctx, s, p, strings.NewReader(""), WriteOptions{})
}

// Truncate empties the regular file at path in place, keeping its inode,
// mode and owner (a final symlink is followed inside the image). A missing
// file is created empty, like truncate -s 0; an empty one is unchanged.
func Truncate(ctx context.Context, s Session, p string) (Result, error) {
	changed, err := s.Truncate(ctx, p, true)
	return Result{Changed: changed}, err
}

// Script uploads the host script src into a private directory (0700)
// inside the image, runs it chrooted with the interpreter its shebang names
// (/bin/sh without one) followed by args, and removes it again. It fails
// like Run: a non-zero exit is a *CommandError with the output in Result.
func Script(ctx context.Context, s Session, src string, args []string, o RunOptions) (Result, error) {
	f, err := os.Open(src)
	if err != nil {
		return Result{}, fmt.Errorf("script: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Result{}, err
	}
	if !fi.Mode().IsRegular() {
		return Result{}, fmt.Errorf("script %s is not a regular file", src)
	}
	first, err := bufio.NewReader(io.LimitReader(f, 1024)).ReadString('\n')
	if err != nil && err != io.EOF {
		return Result{}, err
	}
	interp := shebang(first)
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return Result{}, err
	}

	dir, err := scriptDir(ctx, s)
	if err != nil {
		return Result{}, err
	}
	defer func() {
		// Clean up even when the step was cancelled or timed out.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_, _ = s.Delete(cctx, dir, true)
	}()
	name := filepath.Base(src)
	if name == "." || name == "/" || strings.HasPrefix(name, ".") {
		name = "script" + name
	}
	p := path.Join(dir, name)
	mode := fs.FileMode(0o700)
	if _, err := WriteFile(ctx, s, p, io.LimitReader(f, fi.Size()), WriteOptions{Mode: &mode, Owner: "0:0"}); err != nil {
		return Result{}, fmt.Errorf("uploading the script: %w", err)
	}
	argv := append(append(interp, p), args...)
	return Exec(ctx, s, argv, o)
}

// shebang returns the interpreter argv of a script's first line: as the
// kernel does, everything after the interpreter's path is one argument.
func shebang(first string) []string {
	line, ok := strings.CutPrefix(strings.TrimRight(first, "\r\n"), "#!")
	if !ok {
		return []string{"/bin/sh"}
	}
	line = strings.TrimLeft(line, " \t")
	i := strings.IndexAny(line, " \t")
	if i < 0 {
		if line == "" {
			return []string{"/bin/sh"}
		}
		return []string{line}
	}
	argv := []string{line[:i]}
	if arg := strings.Trim(line[i:], " \t"); arg != "" {
		argv = append(argv, arg)
	}
	return argv
}

// scriptDir creates a fresh private directory for a script: under the
// image's /tmp, or at its root when the image has no /tmp.
func scriptDir(ctx context.Context, s Session) (string, error) {
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return "", err
	}
	name := ".imgbake-script-" + hex.EncodeToString(rnd[:])
	mode := fs.FileMode(0o700)
	var err error
	for _, parent := range []string{"/tmp", "/"} {
		dir := path.Join(parent, name)
		if _, err = s.Mkdir(ctx, dir, &mode, "0:0", false); err == nil {
			return dir, nil
		}
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
			break
		}
	}
	return "", fmt.Errorf("creating a directory for the script: %w", err)
}

// IsDir reports whether path is a directory in the image; a final symlink
// to a directory counts (it is resolved inside the image). A missing path
// is no directory, not an error.
func IsDir(ctx context.Context, s Session, path string) (bool, error) {
	st, err := s.Stat(ctx, path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil || !st.Exists {
		return false, err
	}
	if fs.FileMode(st.Mode)&fs.ModeSymlink != 0 {
		rp, err := s.Realpath(ctx, path)
		if err != nil || !rp.Exists {
			return false, nil
		}
		if st, err = s.Stat(ctx, rp.Path); err != nil || !st.Exists {
			return false, nil
		}
	}
	return fs.FileMode(st.Mode).IsDir(), nil
}

// RequireDir fails unless path is a directory in the image (see IsDir).
func RequireDir(ctx context.Context, s Session, path string) error {
	ok, err := IsDir(ctx, s, path)
	if err == nil && !ok {
		err = fmt.Errorf("%s is not a directory in the image", path)
	}
	return err
}

// IsPathError tells a problem with one path (the agent answered with an
// error: ENOENT, EISDIR, EIO from a damaged filesystem, ...) from a failure
// of the appliance or its channel.
func IsPathError(err error) bool {
	var re *appliance.RemoteError
	return errors.As(err, &re)
}

// OwnerNames maps the user and group ids of the image to their names, from
// its own /etc/passwd and /etc/group; a missing or unreadable file gives an
// empty map (callers show the ids).
func OwnerNames(ctx context.Context, s Session) (users, groups map[int]string) {
	read := func(file string, names func([]byte) map[int]string) map[int]string {
		data, err := ReadFile(ctx, s, file, 8<<20)
		if err != nil {
			return map[int]string{}
		}
		return names(data)
	}
	return read(passwd.PasswdFile, passwd.UserNames), read(passwd.GroupFile, passwd.GroupNames)
}
