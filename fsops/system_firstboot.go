package fsops

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"regexp"
	"strconv"
	"strings"
)

// Firstboot, the way virt-customize --firstboot does it: scripts wait in
// FirstbootDir/scripts; a systemd oneshot unit (on OpenRC images a
// /etc/local.d script, see installOpenRCFirstboot) runs them at boot in
// name order, logs to /root/imgbake-firstboot.log and moves each to
// FirstbootDir/scripts-done, so each runs once.
const (
	FirstbootDir  = "/usr/lib/imgbake/firstboot"
	FirstbootUnit = "imgbake-firstboot.service"
)

const firstbootRunner = `#!/bin/sh -
# Installed by imgbake: runs each script in ` + FirstbootDir + `/scripts once,
# in name order, then moves it to ` + FirstbootDir + `/scripts-done.
d=` + FirstbootDir + `
log=/root/imgbake-firstboot.log
mkdir -p "$d/scripts-done"
for f in "$d"/scripts/*; do
  [ -f "$f" ] || continue
  n=${f##*/}
  echo "=== Running $n ===" >>"$log"
  chmod +x "$f" 2>/dev/null
  "$f" >>"$log" 2>&1
  echo "=== Exit code: $? ===" >>"$log"
  mv -f "$f" "$d/scripts-done/$n"
done
`

const firstbootUnitFile = `# Installed by imgbake: runs the firstboot scripts once.
[Unit]
Description=imgbake firstboot scripts
After=network.target
Before=getty.target display-manager.service
ConditionDirectoryNotEmpty=` + FirstbootDir + `/scripts

[Service]
Type=oneshot
ExecStart=` + FirstbootDir + `/firstboot.sh
RemainAfterExit=yes
StandardOutput=journal+console
TimeoutSec=0

[Install]
WantedBy=multi-user.target
`

var (
	slugJunk     = regexp.MustCompile(`[^a-z0-9]+`)
	scriptNumber = regexp.MustCompile(`^([0-9]+)-`)
)

// slug turns a command or file name into a short script name part.
func slug(s string) string {
	s = strings.Trim(slugJunk.ReplaceAllString(strings.ToLower(s), "-"), "-")
	if len(s) > 40 {
		s = strings.TrimRight(s[:40], "-")
	}
	if s == "" {
		s = "script"
	}
	return s
}

// Firstboot installs script (the contents) to run once at first boot, named
// NNNN-<name>. A script with the same contents already waiting or already
// run leaves the image as it is.
func Firstboot(ctx context.Context, s Session, name string, script []byte) (Result, error) {
	var res Result
	scripts, done := FirstbootDir+"/scripts", FirstbootDir+"/scripts-done"
	next := 1
	for _, dir := range []string{scripts, done} {
		names, err := listDir(ctx, s, dir)
		if err != nil {
			return res, err
		}
		for _, n := range names {
			if m := scriptNumber.FindStringSubmatch(n); m != nil {
				if v, err := strconv.Atoi(m[1]); err == nil && v >= next {
					next = v + 1
				}
			}
			if res.Detail != "" {
				continue
			}
			b, _, err := readOptional(ctx, s, dir+"/"+n)
			if err == nil && bytes.Equal(b, script) {
				if dir == done {
					res.Detail = "already ran: " + dir + "/" + n
				} else {
					res.Detail = "already installed: " + dir + "/" + n
				}
			}
		}
	}
	// The runner and unit are (re)installed either way, so a damaged
	// installation is repaired.
	for _, d := range []string{FirstbootDir, scripts, done} {
		r, err := Mkdir(ctx, s, d, WriteOptions{Mode: ptr(fs.FileMode(0o755)), Owner: "0:0"})
		if err != nil {
			return res, err
		}
		res.merge(r)
	}
	r, err := WriteFile(ctx, s, FirstbootDir+"/firstboot.sh", strings.NewReader(firstbootRunner), WriteOptions{Mode: ptr(fs.FileMode(0o755)), Owner: "0:0"})
	if err != nil {
		return res, err
	}
	res.merge(r)
	openrc, err := usesOpenRC(ctx, s)
	if err != nil {
		return res, err
	}
	note := ""
	if openrc {
		r, err = installOpenRCFirstboot(ctx, s)
		if err != nil {
			return res, err
		}
		res.merge(r)
		note = r.Detail
	} else {
		if _, err := Mkdir(ctx, s, systemdEtc, WriteOptions{}); err != nil {
			return res, err
		}
		r, err = WriteFile(ctx, s, systemdEtc+"/"+FirstbootUnit, strings.NewReader(firstbootUnitFile), WriteOptions{Mode: ptr(fs.FileMode(0o644)), Owner: "0:0"})
		if err != nil {
			return res, err
		}
		res.merge(r)
		r, err = EnableUnit(ctx, s, FirstbootUnit)
		if err != nil {
			return res, err
		}
		res.merge(r)
	}
	if res.Detail != "" {
		return res, nil
	}
	file := fmt.Sprintf("%s/%04d-%s", scripts, next, slug(name))
	if _, err := WriteFile(ctx, s, file, bytes.NewReader(script), WriteOptions{Mode: ptr(fs.FileMode(0o755)), Owner: "0:0"}); err != nil {
		return res, err
	}
	res.Changed = true
	res.Detail = "runs at first boot: " + file
	switch {
	case openrc:
		res.Detail = joinDetail(res.Detail+" (through OpenRC's local service: "+FirstbootLocalScript+")", note)
	default:
		if p, err := hasProgram(ctx, s, "systemctl"); err == nil && p == "" {
			res.Detail += " (systemd is not installed in the image yet)"
		}
	}
	return res, nil
}

// FirstbootCommand is the script Firstboot installs for a shell command.
func FirstbootCommand(command string) []byte {
	if !strings.HasSuffix(command, "\n") {
		command += "\n"
	}
	return []byte("#!/bin/sh\n" + command)
}
