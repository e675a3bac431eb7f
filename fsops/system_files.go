package fsops

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"

	"github.com/imgbake/imgbake/appliance/fstab"
)

// Timezone points /etc/localtime at /usr/share/zoneinfo/NAME, which must
// exist in the image, and keeps /etc/timezone (Debian's record of the
// name) in step where the image has or expects one.
func Timezone(ctx context.Context, s Session, name string) (Result, error) {
	zone := "/usr/share/zoneinfo/" + name
	st, err := lstat(ctx, s, zone)
	if err != nil {
		return Result{}, err
	}
	if !st.Exists || isDir(st) {
		return Result{}, fmt.Errorf("%s does not exist in the image (unknown zone, or tzdata is not installed)", zone)
	}
	var res Result
	lt, err := lstat(ctx, s, "/etc/localtime")
	if err != nil {
		return res, err
	}
	if !isSymlink(lt) || (lt.Target != zone && path.Clean(path.Join("/etc", lt.Target)) != zone) {
		if isDir(lt) {
			return res, fmt.Errorf("/etc/localtime is a directory")
		}
		if r, err := symlink(ctx, s, zone, "/etc/localtime"); err != nil {
			return r, withStderr(err, r)
		}
		res.Changed = true
	}
	tzFile, err := lstat(ctx, s, "/etc/timezone")
	if err != nil {
		return res, err
	}
	debian, err := lstat(ctx, s, "/etc/debian_version")
	if err != nil {
		return res, err
	}
	if tzFile.Exists || debian.Exists {
		r, err := WriteFile(ctx, s, "/etc/timezone", strings.NewReader(name+"\n"), WriteOptions{})
		if err != nil {
			return res, err
		}
		res.merge(r)
	}
	return res, nil
}

// CronSpec is one job in /etc/cron.d.
type CronSpec struct {
	Name     string // file name under /etc/cron.d
	Schedule string
	User     string
	Command  string
}

// Cron writes /etc/cron.d/NAME (0644, root) holding one job.
func Cron(ctx context.Context, s Session, c CronSpec) (Result, error) {
	if u, err := lookupUser(ctx, s, c.User); err != nil {
		return Result{}, err
	} else if u == nil {
		return Result{}, fmt.Errorf("user %q does not exist in the image", c.User)
	}
	var res Result
	if st, err := lstat(ctx, s, "/etc/cron.d"); err != nil {
		return res, err
	} else if !st.Exists {
		r, err := Mkdir(ctx, s, "/etc/cron.d", WriteOptions{Mode: ptr(fs.FileMode(0o755)), Owner: "0:0"})
		if err != nil {
			return res, err
		}
		res.merge(r)
	}
	content := "# Installed by imgbake (cron step " + strconv.Quote(c.Name) + ").\n" +
		"SHELL=/bin/sh\n" +
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n" +
		c.Schedule + " " + c.User + " " + c.Command + "\n"
	file := "/etc/cron.d/" + c.Name
	r, err := WriteFile(ctx, s, file, strings.NewReader(content), WriteOptions{Mode: ptr(fs.FileMode(0o644)), Owner: "0:0"})
	if err != nil {
		return res, err
	}
	res.merge(r)
	found := false
	for _, d := range []string{"cron", "crond"} {
		if p, err := hasProgram(ctx, s, d); err != nil {
			return res, err
		} else if p != "" {
			found = true
		}
	}
	if !found {
		res.Detail = "no cron daemon in the image yet: the job runs once one is installed"
	}
	return res, nil
}

// FstabEntry is one line of /etc/fstab, fields as in fstab(5).
type FstabEntry struct {
	Spec, File, VFSType, MntOps string
	Freq, PassNo                int
}

// Fstab adds e to /etc/fstab, or replaces the entry for the same mount
// point (for swap and "none", for the same spec). Comments and other lines
// are kept; a line that already says the same is left as written.
func Fstab(ctx context.Context, s Session, e FstabEntry) (Result, error) {
	old, exists, err := readOptional(ctx, s, "/etc/fstab")
	if err != nil {
		return Result{}, err
	}
	updated, changed := setFstabEntry(string(old), e)
	if !changed {
		return Result{Detail: "entry already present"}, nil
	}
	o := WriteOptions{}
	if !exists {
		o = WriteOptions{Mode: ptr(fs.FileMode(0o644)), Owner: "0:0"}
	}
	return WriteFile(ctx, s, "/etc/fstab", strings.NewReader(updated), o)
}

// fstabKey is what identifies an entry: the mount point, or for swap and
// "none" mount points, the spec.
func fstabKey(spec, file, vfstype string) string {
	if file == "none" || vfstype == "swap" {
		return "spec " + spec
	}
	return "file " + path.Clean(file)
}

// setFstabEntry returns fstab with e in it, and whether that changed it.
// The first line with e's key is replaced (unless it already matches) and
// later ones with the same key are dropped; without one, e is appended.
func setFstabEntry(data string, e FstabEntry) (string, bool) {
	key := fstabKey(e.Spec, e.File, e.VFSType)
	want := strings.Join([]string{fstab.Escape(e.Spec), fstab.Escape(e.File), e.VFSType, e.MntOps,
		strconv.Itoa(e.Freq), strconv.Itoa(e.PassNo)}, "\t")
	var out []string
	found, changed := false, false
	lines := strings.SplitAfter(data, "\n")
	for _, line := range lines {
		if line == "" {
			continue
		}
		old, ok := fstab.ParseLine(line)
		if !ok || fstabKey(old.Spec, old.File, old.VFSType) != key {
			out = append(out, line)
			continue
		}
		if found {
			changed = true // a duplicate for the same mount point
			continue
		}
		found = true
		if sameFstabEntry(old, e) {
			out = append(out, line)
			continue
		}
		changed = true
		out = append(out, want+"\n")
	}
	if !found {
		if n := len(out); n > 0 && !strings.HasSuffix(out[n-1], "\n") {
			out[n-1] += "\n"
		}
		out = append(out, want+"\n")
		changed = true
	}
	return strings.Join(out, ""), changed
}

// sameFstabEntry compares an existing entry with e, with fstab's defaults
// for missing fields.
func sameFstabEntry(old fstab.Entry, e FstabEntry) bool {
	or := func(s, def string) string {
		if s == "" {
			return def
		}
		return s
	}
	num := func(s string) int {
		n, err := strconv.Atoi(s)
		if err != nil {
			return -1
		}
		return n
	}
	return old.Spec == e.Spec && path.Clean(old.File) == path.Clean(e.File) &&
		old.VFSType == e.VFSType && or(old.MntOps, "defaults") == e.MntOps &&
		num(or(old.Freq, "0")) == e.Freq && num(or(old.PassNo, "0")) == e.PassNo
}

// MachineIDReset empties /etc/machine-id, so that every machine made from
// the image gets its own ID at first boot, and removes a stale D-Bus copy
// (/var/lib/dbus/machine-id as a regular file; the usual symlink stays).
// An image without /etc/machine-id has nothing to reset.
func MachineIDReset(ctx context.Context, s Session) (Result, error) {
	res, err := resetMachineID(ctx, s, "")
	if err != nil {
		return res, err
	}
	r, err := removeDBusMachineID(ctx, s)
	if err != nil {
		return res, err
	}
	res.merge(r)
	return res, nil
}

// resetMachineID writes content ("" or systemd's "uninitialized\n") into
// an existing /etc/machine-id, keeping its mode and owner.
func resetMachineID(ctx context.Context, s Session, content string) (Result, error) {
	st, err := lstat(ctx, s, "/etc/machine-id")
	switch {
	case err != nil:
		return Result{}, err
	case !st.Exists:
		return Result{Detail: "no /etc/machine-id in the image"}, nil
	case !isRegular(st):
		return Result{}, fmt.Errorf("/etc/machine-id is not a regular file")
	}
	return WriteFile(ctx, s, "/etc/machine-id", strings.NewReader(content), WriteOptions{})
}

// removeDBusMachineID deletes /var/lib/dbus/machine-id when it is a copy
// (a regular file); the symlink to /etc/machine-id that current D-Bus
// packages install follows the new ID by itself.
func removeDBusMachineID(ctx context.Context, s Session) (Result, error) {
	st, err := lstat(ctx, s, dbusMachineID)
	if err != nil || !isRegular(st) {
		return Result{}, err
	}
	return Delete(ctx, s, dbusMachineID)
}

const dbusMachineID = "/var/lib/dbus/machine-id"

// SELinuxRelabel touches /.autorelabel when the image's
// /etc/selinux/config enables SELinux (enforcing or permissive), so the
// whole filesystem is relabelled at the next boot. Otherwise it does
// nothing and says why.
func SELinuxRelabel(ctx context.Context, s Session) (Result, error) {
	cfg, ok, err := readOptional(ctx, s, "/etc/selinux/config")
	if err != nil {
		return Result{}, err
	}
	if !ok {
		return Result{Detail: "SELinux is not configured in the image (no /etc/selinux/config): nothing to do"}, nil
	}
	mode := ""
	for line := range strings.Lines(string(cfg)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "SELINUX="); ok {
			mode = strings.Trim(strings.TrimSpace(v), `"'`)
		}
	}
	if mode != "enforcing" && mode != "permissive" {
		return Result{Detail: fmt.Sprintf("SELinux is disabled in the image (SELINUX=%s): nothing to do", mode)}, nil
	}
	r, err := WriteFile(ctx, s, "/.autorelabel", strings.NewReader(""), WriteOptions{})
	if err == nil {
		r.Detail = "relabel at next boot (SELINUX=" + mode + ")"
	}
	return r, err
}
