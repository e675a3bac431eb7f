package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/imgbake/imgbake/appliance"
	"github.com/imgbake/imgbake/internal/vmtest"
	"github.com/imgbake/imgbake/testimages"
)

const (
	opsKey  = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG9wc2tleW9wc2tleW9wc2tleW9wc2tleW9wc2tleQ ops@example"
	rootKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHJvb3RrZXlyb290a2V5cm9vdGtleXJvb3RrZXlyb28 admin@example"
	rootPW  = "r00t: from a file"
	opsPW   = "ops pass: 1"
)

// systemRecipe uses every system step kind. Run twice (the second time with
// --force), only the random password step may report changed.
const systemRecipe = `name: system steps
steps:
  - timezone: Europe/Berlin
  - root_password: {file: ./root-password.txt}
  - user:
      name: ops
      uid: 1500
      groups: [sudo, adm]
      shell: /bin/bash
      ssh_authorized_keys: ["` + opsKey + `"]
      password: "` + opsPW + `"
      sudo: true
  - user: {name: svc, home: /srv/svc, shell: /usr/sbin/nologin}
  - password: {user: svc, random: ./svc-password.txt}
  - ssh_inject: {user: root, file: ./id.pub}
  - ssh_inject: {user: ops, key: "` + opsKey + `"}
  - service: {name: fstrim.timer, enabled: false}
  - service: {name: e2scrub_all.timer, enabled: false, masked: true}
  - mkdir: {path: /usr/local/lib/systemd/system}
  - write:
      path: /usr/local/lib/systemd/system/hello.service
      content: "[Unit]\nDescription=hello\n[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\nAlias=hi.service\n"
  - service: {name: hello, enabled: true}
  - cron: {name: backup, schedule: "30 2 * * *", user: ops, command: /usr/local/bin/backup --all}
  - fstab: {spec: LABEL=data, file: /data, vfstype: ext4, mntops: "defaults,nofail", passno: 2}
  - firstboot: {command: "echo first > /root/fb-command"}
  - firstboot: {script: ./setup.sh}
  - run: echo 0123456789abcdef0123456789abcdef > /etc/machine-id
    creates: /etc/machine-id
  - machine_id_reset: true
  - selinux_relabel: true
`

// systemRecipe2 checks yescrypt images (the hash is checked with the
// image's own perl), locking, unmasking, a static unit and clear errors.
const systemRecipe2 = `name: system steps 2
steps:
  - run: sed -i 's/^ENCRYPT_METHOD.*/ENCRYPT_METHOD YESCRYPT/' /etc/login.defs
  - password: {user: svc, password: "yes crypt"}
  - password: {user: svc, password: "yes crypt"}
  - root_password: {locked: true}
  - root_password: {locked: true}
  - service: {name: e2scrub_all.timer, masked: false, enabled: true}
  - service: {name: pam_namespace, enabled: true}
  - name: unknown zone
    timezone: Mars/Olympus_Mons
    ignore_errors: true
  - name: missing group
    user: {name: x, groups: [nosuchgroup]}
    ignore_errors: true
  - name: missing unit
    service: {name: nosuch, enabled: true}
    ignore_errors: true
`

var statusLine = regexp.MustCompile(`(?m)^\[\s*(\d+)/\d+\] .{60} (ok|changed|skipped|cached|failed \(ignored\)|failed)\s`)

// statuses maps step index to the status printed for it.
func statuses(t *testing.T, out string) map[int]string {
	t.Helper()
	m := map[int]string{}
	for _, sm := range statusLine.FindAllStringSubmatch(out, -1) {
		i, _ := strconv.Atoi(sm[1])
		m[i] = sm[2]
	}
	return m
}

// hostCryptMatches checks a crypt(3) hash on the host, sharing no code with
// imgbake: openssl for SHA-512 crypt, perl's crypt (libxcrypt) otherwise.
func hostCryptMatches(t *testing.T, password, hash string) bool {
	t.Helper()
	if strings.HasPrefix(hash, "$6$") && !strings.HasPrefix(hash, "$6$rounds=") {
		if _, err := exec.LookPath("openssl"); err == nil {
			salt := strings.Split(hash, "$")[2]
			out, err := exec.Command("openssl", "passwd", "-6", "-salt", salt, password).Output()
			if err != nil {
				t.Fatalf("openssl passwd: %v", err)
			}
			return strings.TrimSpace(string(out)) == hash
		}
	}
	perl := vmtest.LookPath(t, "perl", "perl-base")
	err := exec.Command(perl, "-e", `exit(crypt($ARGV[0], $ARGV[1]) eq $ARGV[1] ? 0 : 1)`, password, hash).Run()
	return err == nil
}

// dbField returns field n of the entry for name in a colon-separated file.
func dbField(data []byte, name string, n int) string {
	for line := range strings.Lines(string(data)) {
		f := strings.Split(strings.TrimRight(line, "\n"), ":")
		if f[0] == name && len(f) > n {
			return f[n]
		}
	}
	return ""
}

func TestSystemSteps(t *testing.T) {
	vmTests(t)
	tmp := privateTmp(t)
	info := testimages.InfoOf(t, testimages.NoPart)
	disk := testimages.Fresh(t, testimages.NoPart)
	recipe := writeRecipe(t, systemRecipe)
	dir := filepath.Dir(recipe)
	must(t, os.WriteFile(filepath.Join(dir, "root-password.txt"), []byte(rootPW+"\n"), 0o600))
	must(t, os.WriteFile(filepath.Join(dir, "id.pub"), []byte("# admin key\n"+rootKey+"\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "setup.sh"), []byte("#!/bin/sh\necho from script > /root/fb-script\n"), 0o755))
	boots := appliance.Boots()

	// First run: everything changes, except what is already right.
	r := imgbake(t, "run", "-a", disk, recipe)
	if r.code != 0 {
		t.Fatalf("run failed: %s", r)
	}
	st := statuses(t, r.stdout)
	want := map[int]string{1: "changed", 2: "changed", 3: "changed", 4: "changed", 5: "changed", 6: "changed",
		7: "ok", 8: "changed", 9: "changed", 10: "changed", 11: "changed", 12: "changed", 13: "changed", 14: "changed",
		15: "changed", 16: "changed", 17: "changed", 18: "changed", 19: "ok"}
	for i, w := range want {
		if st[i] != w {
			t.Errorf("first run: step %d is %q, want %q\n%s", i, st[i], w, r.stdout)
		}
	}
	for _, re := range []string{`no /etc/selinux/config\): nothing to do`, `sudo is not installed in the image`,
		`new random password in ` + regexp.QuoteMeta(filepath.Join(dir, "svc-password.txt"))} {
		if !regexp.MustCompile(re).MatchString(r.stdout) {
			t.Errorf("output does not match %s:\n%s", re, r.stdout)
		}
	}
	svcPW1, err := os.ReadFile(filepath.Join(dir, "svc-password.txt"))
	must(t, err)
	if fi, _ := os.Stat(filepath.Join(dir, "svc-password.txt")); fi.Mode().Perm() != 0o600 {
		t.Errorf("random password file has mode %v, want 0600", fi.Mode())
	}
	if !regexp.MustCompile(`^[a-z2-9]{5}(-[a-z2-9]{5}){4}\n$`).Match(svcPW1) {
		t.Errorf("random password file holds %q", svcPW1)
	}
	checkSystemImage(t, disk, info, strings.TrimSpace(string(svcPW1)))
	for _, pw := range []string{rootPW, opsPW, strings.TrimSpace(string(svcPW1))} {
		if strings.Contains(r.stdout+r.stderr, pw) {
			t.Errorf("a password shows in the output:\n%s", r)
		}
	}

	// Second run with --force: nothing changes; the random password is
	// read back from its host file and still matches the image.
	r = imgbake(t, "run", "--force", "-a", disk, recipe)
	if r.code != 0 {
		t.Fatalf("second run failed: %s", r)
	}
	st = statuses(t, r.stdout)
	for i := 1; i <= 19; i++ {
		w := "ok"
		switch i {
		case 17:
			w = "skipped" // creates: /etc/machine-id
		}
		if st[i] != w {
			t.Errorf("second run: step %d is %q, want %q", i, st[i], w)
		}
	}
	if !strings.Contains(r.stdout, "system steps: 18 ok, 0 changed, 1 skipped, 0 failed, 0 ignored") {
		t.Errorf("second run summary:\n%s", r.stdout)
	}
	svcPW2, err := os.ReadFile(filepath.Join(dir, "svc-password.txt"))
	must(t, err)
	if string(svcPW2) != string(svcPW1) {
		t.Errorf("the random password changed on a re-run: %q -> %q", svcPW1, svcPW2)
	}
	checkSystemImage(t, disk, info, strings.TrimSpace(string(svcPW2)))

	// Third recipe: yescrypt, locking, unmasking, a static unit, errors.
	recipe2 := writeRecipe(t, systemRecipe2)
	r = imgbake(t, "run", "-a", disk, recipe2)
	if r.code != 0 {
		t.Fatalf("third run failed: %s", r)
	}
	st = statuses(t, r.stdout)
	want = map[int]string{1: "changed", 2: "changed", 3: "ok", 4: "changed", 5: "ok", 6: "changed", 7: "ok",
		8: "failed (ignored)", 9: "failed (ignored)", 10: "failed (ignored)"}
	for i, w := range want {
		if st[i] != w {
			t.Errorf("third run: step %d is %q, want %q\n%s", i, st[i], w, r.stdout)
		}
	}
	for _, msg := range []string{
		"/usr/share/zoneinfo/Mars/Olympus_Mons does not exist in the image (unknown zone, or tzdata is not installed)",
		`group "nosuchgroup" does not exist in the image`,
		"unit nosuch.service not found in the image",
		"pam_namespace.service has no [Install] section (static): nothing to enable",
		"(yescrypt)",
	} {
		if !strings.Contains(r.stdout, msg) {
			t.Errorf("output lacks %q:\n%s", msg, r.stdout)
		}
	}
	files, err := testimages.ReadFiles(t, disk, info.Format, info.RootPartition, "/etc/shadow")
	must(t, err)
	shadow := files["/etc/shadow"]
	if h := dbField(shadow, "svc", 1); !strings.HasPrefix(h, "$y$") || !hostCryptMatches(t, "yes crypt", h) {
		t.Errorf("svc's yescrypt hash %q does not match", h)
	}
	if h := dbField(shadow, "root", 1); !strings.HasPrefix(h, "!$6$") || !hostCryptMatches(t, rootPW, h[1:]) {
		t.Errorf("root's hash %q is not the locked file password", h)
	}
	for _, p := range []string{"/etc/systemd/system/e2scrub_all.timer", "/etc/systemd/system/timers.target.wants/e2scrub_all.timer"} {
		fi, err := testimages.Stat(t, disk, info.Format, info.RootPartition, p)
		switch {
		case p == "/etc/systemd/system/e2scrub_all.timer" && err == nil:
			t.Errorf("%s still exists after unmasking: %+v", p, fi)
		case p != "/etc/systemd/system/e2scrub_all.timer" && (err != nil || fi.Target != "/lib/systemd/system/e2scrub_all.timer"):
			t.Errorf("%s = %+v, %v; want a link to the unit", p, fi, err)
		}
	}

	if got := appliance.Boots() - boots; got != 3 {
		t.Errorf("three runs booted the appliance %d times", got)
	}
	noLeftovers(t, tmp)
}
