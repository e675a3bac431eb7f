package main

import (
	"strings"
	"testing"

	"github.com/imgbake/imgbake/testimages"
)

// checkSystemImage reads the image back with debugfs and checks what the
// system steps did.
func checkSystemImage(t *testing.T, disk string, info testimages.Info, svcPW string) {
	t.Helper()
	paths := []string{"/etc/timezone", "/etc/shadow", "/etc/passwd", "/etc/group", "/etc/sudoers.d/ops",
		"/home/ops/.ssh/authorized_keys", "/root/.ssh/authorized_keys", "/etc/cron.d/backup", "/etc/fstab",
		"/etc/machine-id", "/etc/systemd/system/imgbake-firstboot.service",
		"/usr/lib/imgbake/firstboot/firstboot.sh", "/usr/lib/imgbake/firstboot/scripts/0001-echo-first-root-fb-command",
		"/usr/lib/imgbake/firstboot/scripts/0002-setup-sh", "/usr/lib/imgbake/firstboot/scripts/0003-setup-sh",
		"/.autorelabel", "/var/lib/imgbake/state.json"}
	files, err := testimages.ReadFiles(t, disk, info.Format, info.RootPartition, paths...)
	must(t, err)
	exact := map[string]string{
		"/etc/timezone":                  "Europe/Berlin\n",
		"/etc/machine-id":                "",
		"/home/ops/.ssh/authorized_keys": opsKey + "\n",
		"/root/.ssh/authorized_keys":     rootKey + "\n",
		"/etc/cron.d/backup": "# Installed by imgbake (cron step \"backup\").\nSHELL=/bin/sh\n" +
			"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n30 2 * * * ops /usr/local/bin/backup --all\n",
		"/etc/sudoers.d/ops": "# Written by imgbake: ops may run any command as any user, without a password.\nops ALL=(ALL:ALL) NOPASSWD: ALL\n",
		"/usr/lib/imgbake/firstboot/scripts/0001-echo-first-root-fb-command": "#!/bin/sh\necho first > /root/fb-command\n",
		"/usr/lib/imgbake/firstboot/scripts/0002-setup-sh":                   "#!/bin/sh\necho from script > /root/fb-script\n",
	}
	for p, w := range exact {
		if got, ok := files[p]; !ok || string(got) != w {
			t.Errorf("%s = %q (present %v), want %q", p, got, ok, w)
		}
	}
	for _, gone := range []string{"/.autorelabel", "/usr/lib/imgbake/firstboot/scripts/0003-setup-sh"} {
		if _, ok := files[gone]; ok {
			t.Errorf("%s exists", gone)
		}
	}
	if !strings.Contains(string(files["/etc/systemd/system/imgbake-firstboot.service"]), "ExecStart=/usr/lib/imgbake/firstboot/firstboot.sh") {
		t.Errorf("firstboot unit:\n%s", files["/etc/systemd/system/imgbake-firstboot.service"])
	}
	if !strings.Contains(string(files["/usr/lib/imgbake/firstboot/firstboot.sh"]), `mv -f "$f" "$d/scripts-done/$n"`) {
		t.Errorf("firstboot runner:\n%s", files["/usr/lib/imgbake/firstboot/firstboot.sh"])
	}
	fstab := string(files["/etc/fstab"])
	if strings.Count(fstab, "/data") != 1 || !strings.Contains(fstab, "LABEL=data\t/data\text4\tdefaults,nofail\t0\t2\n") {
		t.Errorf("/etc/fstab:\n%s", fstab)
	}

	// Accounts.
	passwd, group, shadow := files["/etc/passwd"], files["/etc/group"], files["/etc/shadow"]
	if got := dbField(passwd, "ops", 2) + ":" + dbField(passwd, "ops", 5) + ":" + dbField(passwd, "ops", 6); got != "1500:/home/ops:/bin/bash" {
		t.Errorf("ops in /etc/passwd: %s", got)
	}
	if got := dbField(passwd, "svc", 5) + ":" + dbField(passwd, "svc", 6); got != "/srv/svc:/usr/sbin/nologin" {
		t.Errorf("svc in /etc/passwd: %s", got)
	}
	for _, g := range []string{"sudo", "adm"} {
		if members := dbField(group, g, 3); !strings.Contains(","+members+",", ",ops,") {
			t.Errorf("ops is not in group %s (%q)", g, members)
		}
	}
	for user, pw := range map[string]string{"root": rootPW, "ops": opsPW, "svc": svcPW} {
		h := dbField(shadow, user, 1)
		if !strings.HasPrefix(h, "$6$") || !hostCryptMatches(t, pw, h) {
			t.Errorf("%s's hash %q does not match its password", user, h)
		}
	}
	for p, data := range files {
		for _, pw := range []string{rootPW, opsPW, svcPW} {
			if strings.Contains(string(data), pw) {
				t.Errorf("%s holds a plain-text password", p)
			}
		}
	}

	// Modes, owners and links, with lstat.
	type want struct {
		perm     uint32
		uid      uint32
		link     string
		absent   bool
		ownerOps bool
	}
	checks := map[string]want{
		"/etc/localtime":                        {link: "/usr/share/zoneinfo/Europe/Berlin"},
		"/etc/sudoers.d/ops":                    {perm: 0o440},
		"/home/ops/.ssh":                        {perm: 0o700, ownerOps: true},
		"/home/ops/.ssh/authorized_keys":        {perm: 0o600, ownerOps: true},
		"/root/.ssh/authorized_keys":            {perm: 0o600},
		"/etc/cron.d/backup":                    {perm: 0o644},
		"/etc/systemd/system/e2scrub_all.timer": {link: "/dev/null"},
		"/etc/systemd/system/timers.target.wants/e2scrub_all.timer":             {absent: true},
		"/etc/systemd/system/timers.target.wants/fstrim.timer":                  {absent: true},
		"/etc/systemd/system/timers.target.wants/apt-daily.timer":               {link: "/lib/systemd/system/apt-daily.timer"},
		"/etc/systemd/system/multi-user.target.wants/hello.service":             {link: "/usr/local/lib/systemd/system/hello.service"},
		"/etc/systemd/system/hi.service":                                        {link: "/usr/local/lib/systemd/system/hello.service"},
		"/etc/systemd/system/multi-user.target.wants/imgbake-firstboot.service": {link: "/etc/systemd/system/imgbake-firstboot.service"},
		"/usr/lib/imgbake/firstboot/scripts/0002-setup-sh":                      {perm: 0o755},
	}
	for p, w := range checks {
		fi, err := testimages.Stat(t, disk, info.Format, info.RootPartition, p)
		switch {
		case w.absent:
			if err == nil {
				t.Errorf("%s exists: %+v", p, fi)
			}
		case err != nil:
			t.Errorf("stat %s: %v", p, err)
		case w.link != "":
			if !fi.IsSymlink || fi.Target != w.link {
				t.Errorf("%s: %+v, want a link to %s", p, fi, w.link)
			}
		case fi.Perm() != w.perm:
			t.Errorf("%s mode %o, want %o", p, fi.Perm(), w.perm)
		case w.ownerOps && (fi.UID != 1500 || fi.GID != 1500):
			t.Errorf("%s owned by %d:%d, want 1500:1500", p, fi.UID, fi.GID)
		case !w.ownerOps && fi.UID != 0:
			t.Errorf("%s owned by uid %d, want root", p, fi.UID)
		}
	}
}
