package fsops

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"strings"

	"github.com/imgbake/imgbake/appliance/proto"
)

// Package steps run the image's own package manager inside the chroot,
// with the appliance's user-mode network and a resolver the image can use.

// ErrNoPackageManager means the image has no package manager imgbake knows.
var ErrNoPackageManager = errors.New("no supported package manager in the image")

// packageManager knows how to drive one package manager; packageManagers
// has one for each of proto.PackageManagers.
type packageManager struct {
	// installed is a shell command that succeeds when every package in
	// "$@" is installed.
	installed string
	install   string
	uninstall string
	update    string
	env       []string
	// upgraded reports whether an update's output says anything changed.
	upgraded func(out string) bool
}

var aptUpgraded = regexp.MustCompile(`(?m)^([1-9][0-9]*) upgraded|, ([1-9][0-9]*) newly installed`)

var packageManagers = map[string]packageManager{
	proto.PkgApt: {
		installed: `for p; do dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || exit 1; done`,
		install:   `apt-get -o DPkg::Lock::Timeout=300 update -q && apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends "$@"`,
		uninstall: `apt-get -o DPkg::Lock::Timeout=300 remove -y -q "$@"`,
		update:    `apt-get -o DPkg::Lock::Timeout=300 update -q && apt-get -o DPkg::Lock::Timeout=300 upgrade -y -q`,
		env:       []string{"DEBIAN_FRONTEND=noninteractive", "APT_LISTCHANGES_FRONTEND=none", "LC_ALL=C"},
		upgraded:  func(out string) bool { return aptUpgraded.MatchString(out) },
	},
	proto.PkgDNF: {
		installed: `rpm -q "$@" >/dev/null`,
		install:   `dnf install -y "$@"`,
		uninstall: `dnf remove -y "$@"`,
		update:    `dnf upgrade -y --refresh`,
		upgraded:  func(out string) bool { return !strings.Contains(out, "Nothing to do.") },
	},
	proto.PkgYum: {
		installed: `rpm -q "$@" >/dev/null`,
		install:   `yum install -y "$@"`,
		uninstall: `yum remove -y "$@"`,
		update:    `yum update -y`,
		upgraded:  func(out string) bool { return !strings.Contains(out, "No packages marked for update") },
	},
	proto.PkgZypper: {
		installed: `rpm -q "$@" >/dev/null`,
		install:   `zypper --non-interactive install "$@"`,
		uninstall: `zypper --non-interactive remove "$@"`,
		update:    `zypper --non-interactive update`,
		upgraded:  func(out string) bool { return !strings.Contains(out, "Nothing to do.") },
	},
	proto.PkgAPK: {
		installed: `apk info -e "$@" >/dev/null`,
		install:   `apk add "$@"`,
		uninstall: `apk del "$@"`,
		update:    `apk update && apk upgrade`,
		upgraded:  func(out string) bool { return strings.Contains(out, "Upgrading") },
	},
	proto.PkgPacman: {
		installed: `pacman -Q "$@" >/dev/null 2>&1`,
		install:   `pacman -Sy --noconfirm --needed "$@"`,
		uninstall: `pacman -R --noconfirm "$@"`,
		update:    `pacman -Syu --noconfirm`,
		upgraded:  func(out string) bool { return !strings.Contains(out, "there is nothing to do") },
	},
}

// PackageOptions say how a package step runs.
type PackageOptions struct {
	Manager string // from the facts: one of proto.PackageManagers
	Network bool   // false: --no-network, the package manager must work offline
	Run     RunOptions
}

func manager(name string) (packageManager, error) {
	pm, ok := packageManagers[name]
	if !ok {
		if name == "" {
			return pm, ErrNoPackageManager
		}
		return pm, fmt.Errorf("%w (found %q)", ErrNoPackageManager, name)
	}
	return pm, nil
}

// allInstalled reports whether every package is installed.
func allInstalled(ctx context.Context, s Session, pm packageManager, pkgs []string) (bool, error) {
	res, err := Exec(ctx, s, append([]string{"/bin/sh", "-c", pm.installed, "sh"}, pkgs...), RunOptions{})
	if err == nil {
		return true, nil
	}
	var ce *CommandError
	if errors.As(err, &ce) && res.RC != 0 {
		return false, nil
	}
	return false, err
}

// Install installs pkgs unless all are installed already.
func Install(ctx context.Context, s Session, pkgs []string, o PackageOptions) (Result, error) {
	pm, err := manager(o.Manager)
	if err != nil {
		return Result{}, err
	}
	if ok, err := allInstalled(ctx, s, pm, pkgs); err != nil || ok {
		return Result{Detail: "already installed"}, err
	}
	return packageCommand(ctx, s, pm, pm.install, pkgs, o)
}

// Uninstall removes pkgs that are installed.
func Uninstall(ctx context.Context, s Session, pkgs []string, o PackageOptions) (Result, error) {
	pm, err := manager(o.Manager)
	if err != nil {
		return Result{}, err
	}
	var present []string
	for _, p := range pkgs {
		ok, err := allInstalled(ctx, s, pm, []string{p})
		if err != nil {
			return Result{}, err
		}
		if ok {
			present = append(present, p)
		}
	}
	if len(present) == 0 {
		return Result{Detail: "not installed"}, nil
	}
	return packageCommand(ctx, s, pm, pm.uninstall, present, o)
}

// Update upgrades every package; Changed says whether anything was.
func Update(ctx context.Context, s Session, o PackageOptions) (Result, error) {
	pm, err := manager(o.Manager)
	if err != nil {
		return Result{}, err
	}
	res, err := packageCommand(ctx, s, pm, pm.update, nil, o)
	if err == nil {
		res.Changed = pm.upgraded(res.Stdout)
	}
	return res, err
}

func packageCommand(ctx context.Context, s Session, pm packageManager, script string, pkgs []string, o PackageOptions) (res Result, err error) {
	if o.Network {
		// From here on every command in the image has the network and
		// resolves through QEMU's resolver; the agent restores the image's
		// own resolv.conf (a symlink stays a symlink) at shutdown.
		if _, err := s.NetworkUp(ctx); err != nil {
			return Result{}, err
		}
	}
	if o.Manager == proto.PkgApt {
		// Packages must not start services inside the chroot.
		undo, err := blockServiceStarts(ctx, s)
		if err != nil {
			return Result{}, err
		}
		defer func() {
			if rerr := undo(); rerr != nil && err == nil {
				err = rerr
			}
		}()
	}
	ro := o.Run
	ro.Env = append(append([]string{}, pm.env...), ro.Env...)
	res, err = Exec(ctx, s, append([]string{"/bin/sh", "-c", script, "sh"}, pkgs...), ro)
	if err == nil {
		res.Changed = true
	}
	return res, err
}

const (
	policyRCD = "/usr/sbin/policy-rc.d"
)

// blockServiceStarts installs a policy-rc.d that forbids starting
// services, unless the image has its own, and returns the undo.
func blockServiceStarts(ctx context.Context, s Session) (func() error, error) {
	exists, err := Exists(ctx, s, policyRCD)
	if err != nil || exists {
		return func() error { return nil }, err
	}
	mode := policyMode
	if _, err := WriteFile(ctx, s, policyRCD, strings.NewReader("#!/bin/sh\n# installed by imgbake for the duration of a package step\nexit 101\n"), WriteOptions{Mode: &mode}); err != nil {
		return nil, err
	}
	return func() error {
		_, err := Delete(context.WithoutCancel(ctx), s, policyRCD)
		return err
	}, nil
}

var policyMode fs.FileMode = 0o755
