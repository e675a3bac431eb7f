package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/imgbake/imgbake/appliance"
)

// TestRepairCommandsBadInput: every mistake in the arguments of the
// one-shot commands is refused before anything boots, with exit 2 and the
// disk byte-identical.
func TestRepairCommandsBadInput(t *testing.T) {
	disk := makeRawDisk(t)
	before := sha256File(t, disk)
	hostFile := filepath.Join(t.TempDir(), "file")
	must(t, os.WriteFile(hostFile, []byte("x"), 0o644))
	pwFile := filepath.Join(t.TempDir(), "pw")
	must(t, os.WriteFile(pwFile, []byte("secret\n"), 0o600))
	missing := filepath.Join(t.TempDir(), "missing")

	tests := []struct {
		name   string
		args   []string
		stderr string // regexp
	}{
		{"ls no path", []string{"ls", "-a", disk}, `usage: imgbake ls \[flags\] PATH`},
		{"ls relative", []string{"ls", "-a", disk, "etc"}, `"etc": paths inside the image must be absolute`},
		{"ls path after --", []string{"ls", "-a", disk, "/etc", "--", "-l"}, `"-l": paths inside the image must be absolute`},
		{"cat outside the image", []string{"cat", "-a", disk, "../../etc/passwd"}, `"\.\./\.\./etc/passwd": paths inside the image must be absolute`},
		{"cat NUL", []string{"cat", "-a", disk, "/etc/\x00passwd"}, `must not contain a NUL byte`},
		{"cat nothing", []string{"cat", "-a", disk}, `usage: imgbake cat`},
		{"copy-in one arg", []string{"copy-in", "-a", disk, "/tmp"}, `usage: imgbake copy-in \[flags\] HOSTPATH\.\.\. IMAGEDIR`},
		{"copy-in --ro", []string{"copy-in", "--ro", "-a", disk, hostFile, "/root"}, `copy-in writes to the image and cannot run with --ro`},
		{"copy-in missing host file", []string{"copy-in", "-a", disk, missing, "/root"}, `copy-in: lstat .*missing: no such file or directory`},
		{"copy-in relative dest", []string{"copy-in", "-a", disk, hostFile, "root"}, `"root": paths inside the image must be absolute`},
		{"copy-out missing host dir", []string{"copy-out", "-a", disk, "/etc/hostname", missing}, `copy-out: .*missing is not a directory on the host`},
		{"copy-out relative", []string{"copy-out", "-a", disk, "etc/hostname", t.TempDir()}, `paths inside the image must be absolute`},
		{"edit two files", []string{"edit", "-a", disk, "/etc/a", "/etc/b"}, `exactly one file`},
		{"edit --ro", []string{"edit", "--ro", "-e", "s/a/b/", "-a", disk, "/etc/hostname"}, `edit writes to the image and cannot run with --ro`},
		{"edit bad expression", []string{"edit", "-e", "s/a/b", "-a", disk, "/etc/hostname"}, `-e "s/a/b": missing the closing delimiter`},
		{"edit bad regexp", []string{"edit", "-e", "s/(/b/", "-a", disk, "/etc/hostname"}, `error parsing regexp`},
		{"edit not s", []string{"edit", "-e", "d", "-a", disk, "/etc/hostname"}, `only s commands are supported`},
		{"reset-password no user", []string{"reset-password", "-a", disk, "--random"}, `usage: imgbake reset-password`},
		{"reset-password bad user", []string{"reset-password", "--random", "-a", disk, "root:x"}, `"root:x" is not a user name`},
		{"reset-password both sources", []string{"reset-password", "--random", "--password-file", pwFile, "-a", disk, "root"}, `--password-file and --random exclude each other`},
		{"reset-password random-file alone", []string{"reset-password", "--random-file", missing, "-a", disk, "root"}, `--random-file goes with --random`},
		{"reset-password missing file", []string{"reset-password", "--password-file", missing, "-a", disk, "root"}, `reading the password file: open .*missing: no such file`},
		{"reset-password no password", []string{"reset-password", "-a", disk, "root"}, `no password given`},
		{"reset-password --ro", []string{"reset-password", "--ro", "--random", "-a", disk, "root"}, `cannot run with --ro`},
		{"fstab fix --ro", []string{"fstab", "fix", "--ro", "-a", disk}, `fix writes to the image and cannot run with --ro`},
		{"fstab check arg", []string{"fstab", "check", "-a", disk, "extra"}, `fstab check takes no arguments`},
		{"fstab unknown flag", []string{"fstab", "check", "--bogus", "-a", disk}, `flag provided but not defined: -bogus`},
		{"fsck bad device", []string{"fsck", "-a", disk, "../../dev/sda"}, `"\.\./\.\./dev/sda" is not a device name`},
		// /dev/mapper/NAME and VG/LV name LVM volumes; deeper paths are not devices.
		{"fsck device with path", []string{"fsck", "-a", disk, "/dev/disk/by-id/x"}, `is not a device name`},
		{"fsck repair ro", []string{"fsck", "--repair", "--ro", "-a", disk}, `--repair writes to the image and cannot run with --ro`},
		{"fsck -m", []string{"fsck", "-m", "/dev/sda1", "-a", disk}, `-m does not apply`},
		{"ls no disk", []string{"ls", "/"}, `no disk image given: use -a FILE`},
	}
	boots := appliance.Boots()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := imgbake(t, tt.args...)
			if r.code != ExitUsage {
				t.Errorf("exit %d, want %d\n%s", r.code, ExitUsage, r)
			}
			if !regexp.MustCompile(tt.stderr).MatchString(r.stderr) {
				t.Errorf("stderr does not match %q:\n%s", tt.stderr, r.stderr)
			}
			if n := strings.Count(strings.TrimSpace(r.stderr), "\n"); n > 0 {
				t.Errorf("want a one-line message, got %d lines:\n%s", n+1, r.stderr)
			}
		})
	}
	if got := appliance.Boots() - boots; got != 0 {
		t.Errorf("bad input booted the appliance %d times", got)
	}
	if sha256File(t, disk) != before {
		t.Error("the disk changed")
	}
	if _, err := os.Stat(missing); err == nil {
		t.Error("a refused --random-file was written")
	}
}
