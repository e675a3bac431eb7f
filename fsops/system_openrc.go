package fsops

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
)

// OpenRC (Alpine, Gentoo, Artix): services are the scripts in /etc/init.d,
// enabled by a symlink in a runlevel directory (/etc/runlevels/default/NAME
// -> /etc/init.d/NAME, what `rc-update add NAME` makes); firstboot runs
// from /etc/local.d through OpenRC's local service.

const (
	openrcInitDir   = "/etc/init.d"
	openrcRunlevels = "/etc/runlevels"
	// FirstbootLocalScript is the OpenRC hook that starts the firstboot
	// runner: the local service runs /etc/local.d/*.start at every boot,
	// and the runner finds nothing left to do after the first.
	FirstbootLocalScript = "/etc/local.d/imgbake-firstboot.start"
)

// systemdBinaries are where systemd itself lives; an image with one of
// them is managed by systemd whatever else it holds.
var systemdBinaries = []string{"/usr/lib/systemd/systemd", "/lib/systemd/systemd"}

// usesOpenRC reports whether the image's services are OpenRC's: it has no
// systemd, and it has OpenRC's runlevel directory or its binary. An image
// with neither keeps being treated as systemd (systemd may be installed by
// a later step).
func usesOpenRC(ctx context.Context, s Session) (bool, error) {
	for _, p := range systemdBinaries {
		st, err := lstat(ctx, s, p)
		if err != nil {
			return false, err
		}
		if st.Exists {
			return false, nil
		}
	}
	st, err := lstat(ctx, s, openrcRunlevels)
	if err != nil || isDir(st) {
		return err == nil, err
	}
	p, err := hasProgram(ctx, s, "openrc")
	return p != "", err
}

// openrcServiceName is the init script name for a service step's name:
// "sshd" and "sshd.service" name /etc/init.d/sshd; other unit types have no
// OpenRC counterpart.
func openrcServiceName(unit string) (string, error) {
	name, ok := strings.CutSuffix(unit, ".service")
	if !ok || name == "" || strings.Contains(name, "@") {
		return "", fmt.Errorf("%s: the image uses OpenRC, which has only services (/etc/init.d scripts), no %s units",
			unit, strings.TrimPrefix(path.Ext(unit), "."))
	}
	return name, nil
}

// openrcRunlevelDirs lists the runlevel directories of the image
// (sysinit, boot, default, shutdown and any the admin made).
func openrcRunlevelDirs(ctx context.Context, s Session) ([]string, error) {
	names, err := listDir(ctx, s, openrcRunlevels)
	if err != nil {
		return nil, err
	}
	var dirs []string
	for _, n := range names {
		st, err := lstat(ctx, s, openrcRunlevels+"/"+n)
		if err != nil {
			return nil, err
		}
		if isDir(st) {
			dirs = append(dirs, openrcRunlevels+"/"+n)
		}
	}
	slices.Sort(dirs)
	return dirs, nil
}

// openrcRunlevelsOf lists the runlevel links of service name.
func openrcRunlevelsOf(ctx context.Context, s Session, name string) ([]string, error) {
	dirs, err := openrcRunlevelDirs(ctx, s)
	if err != nil {
		return nil, err
	}
	var links []string
	for _, d := range dirs {
		st, err := lstat(ctx, s, d+"/"+name)
		if err != nil {
			return nil, err
		}
		if st.Exists {
			links = append(links, d+"/"+name)
		}
	}
	return links, nil
}

// openrcEnable adds service name to the default runlevel, as `rc-update
// add NAME default` does, unless it is in a runlevel already (boot or
// sysinit services stay where they are). requireScript refuses a service
// whose /etc/init.d script is missing.
func openrcEnable(ctx context.Context, s Session, name string, requireScript bool) (Result, error) {
	script := openrcInitDir + "/" + name
	st, err := lstat(ctx, s, script)
	if err != nil {
		return Result{}, err
	}
	if !st.Exists && requireScript {
		return Result{}, fmt.Errorf("service %s: the image has no %s (OpenRC's init script)", name, script)
	}
	links, err := openrcRunlevelsOf(ctx, s, name)
	if err != nil {
		return Result{}, err
	}
	if len(links) > 0 {
		return Result{Detail: "already enabled: " + strings.Join(links, ", ")}, nil
	}
	dir := openrcRunlevels + "/default"
	if _, err := Mkdir(ctx, s, dir, WriteOptions{Mode: ptr(fs.FileMode(0o755)), Owner: "0:0"}); err != nil {
		return Result{}, err
	}
	link := dir + "/" + name
	if _, err := s.Symlink(ctx, script, link); err != nil {
		return Result{}, fmt.Errorf("enabling %s: %w", name, err)
	}
	res := Result{Changed: true, Detail: "enabled: " + link + " -> " + script}
	if !st.Exists {
		res.Detail += " (" + script + " is not installed yet)"
	}
	return res, nil
}

// openrcDisable removes service name from every runlevel.
func openrcDisable(ctx context.Context, s Session, name string) (Result, error) {
	links, err := openrcRunlevelsOf(ctx, s, name)
	if err != nil {
		return Result{}, err
	}
	var res Result
	for _, l := range links {
		r, err := Delete(ctx, s, l)
		if err != nil {
			return res, err
		}
		res.merge(r)
	}
	if len(links) > 0 {
		res.Detail = "disabled: removed " + strings.Join(links, ", ")
	}
	return res, nil
}

// openrcService is Service on an OpenRC image.
func openrcService(ctx context.Context, s Session, spec ServiceSpec) (Result, error) {
	name, err := openrcServiceName(spec.Name)
	if err != nil {
		return Result{}, err
	}
	if spec.Masked != nil && *spec.Masked {
		return Result{}, fmt.Errorf("service %s: the image uses OpenRC, which cannot mask a service; use enabled: false", name)
	}
	if spec.Enabled == nil {
		return Result{Detail: "OpenRC has no masking: nothing to unmask"}, nil
	}
	if *spec.Enabled {
		return openrcEnable(ctx, s, name, true)
	}
	return openrcDisable(ctx, s, name)
}

const firstbootLocalStart = `#!/bin/sh
# Installed by imgbake: OpenRC's local service runs this at every boot; the
# runner runs each waiting firstboot script once and moves it away.
exec ` + FirstbootDir + `/firstboot.sh
`

// installOpenRCFirstboot hooks the firstboot runner into OpenRC: a
// /etc/local.d script, and the local service in the default runlevel.
func installOpenRCFirstboot(ctx context.Context, s Session) (Result, error) {
	var res Result
	r, err := Mkdir(ctx, s, path.Dir(FirstbootLocalScript), WriteOptions{Mode: ptr(fs.FileMode(0o755)), Owner: "0:0"})
	if err != nil {
		return res, err
	}
	res.merge(r)
	r, err = WriteFile(ctx, s, FirstbootLocalScript, strings.NewReader(firstbootLocalStart), WriteOptions{Mode: ptr(fs.FileMode(0o755)), Owner: "0:0"})
	if err != nil {
		return res, err
	}
	res.merge(r)
	r, err = openrcEnable(ctx, s, "local", false)
	if err != nil {
		return res, err
	}
	res.merge(r)
	if strings.Contains(r.Detail, "not installed") {
		res.Detail = "OpenRC's local service (" + openrcInitDir + "/local) is not installed in the image yet"
	}
	return res, nil
}
