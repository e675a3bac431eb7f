package steps

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/recipes"
)

// systemKinds are the system step kinds tested here.
var systemKinds = []string{"cron", "firstboot", "fstab", "machine_id_reset", "password", "root_password",
	"selinux_relabel", "service", "ssh_inject", "sysprep", "timezone", "user"}

const testKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx0ZXN0a2V5dGVzdGtleXRlc3RrZXl0ZXN0a2V5 ops@example"

func TestParseSystemValid(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"pw.txt", "id.pub", "setup.sh"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	src := `steps:
  - timezone: Europe/Berlin
  - timezone: Etc/GMT+5
  - root_password: {password: "s3cret: with colon"}
  - root_password: {file: ./pw.txt}
  - root_password: {random: ./root-password.txt}
  - root_password: {locked: true}
  - password: {user: ops, password: 1234}
  - password: {random: out.txt, user: svc.app}
  - user: {name: ops}
  - user:
      name: ops
      uid: 1001
      groups: [sudo, adm]
      shell: /bin/bash
      home: /srv/ops/
      ssh_authorized_keys:
        - "` + testKey + `"
      password: hunter2
      sudo: true
  - user: {name: app, groups: users, password: {random: ./app.txt}, sudo: false}
  - ssh_inject: {user: root, key: "` + testKey + `"}
  - ssh_inject: {user: root, file: id.pub}
  - service: {name: ssh, enabled: true}
  - service: {name: fstrim.timer, enabled: false, masked: true}
  - service: {name: getty@tty1.service, masked: false}
  - cron: {name: backup-db, schedule: "30  2 * * 1-5", command: /usr/local/bin/backup --all}
  - cron: {name: boot_job, schedule: "@reboot", user: ops, command: "date > /tmp/booted"}
  - fstab: {spec: LABEL=data, file: /data/, vfstype: ext4, mntops: "defaults,nofail", passno: 2}
  - fstab: {spec: /dev/vdb2, file: none, vfstype: swap}
  - firstboot: {command: "ssh-keygen -A"}
  - firstboot: {script: ./setup.sh}
  - machine_id_reset: true
  - selinux_relabel: true
  - sysprep: {}
  - sysprep: {operations: [defaults, -tmp-files, +cron-spool], keep: [/srv/keep/, "/var/log/app/*"], machine_id: uninitialized}
`
	r, err := recipes.Parse("sys.yaml", []byte(src), dir)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	p := func(name string) string { return filepath.Join(dir, name) }
	want := []recipes.Op{
		&Timezone{Name: "Europe/Berlin"},
		&Timezone{Name: "Etc/GMT+5"},
		&RootPassword{Secret: recipes.Secret{Password: "s3cret: with colon"}},
		&RootPassword{Secret: recipes.Secret{File: p("pw.txt")}},
		&RootPassword{Secret: recipes.Secret{Random: p("root-password.txt")}},
		&RootPassword{Locked: true},
		&Password{User: "ops", Secret: recipes.Secret{Password: "1234"}},
		&Password{User: "svc.app", Secret: recipes.Secret{Random: p("out.txt")}},
		&User{Name: "ops"},
		&User{Name: "ops", UID: new(1001), Groups: []string{"sudo", "adm"}, Shell: "/bin/bash", Home: "/srv/ops",
			SSHAuthorizedKeys: []string{testKey}, Password: &recipes.Secret{Password: "hunter2"}, Sudo: new(true)},
		&User{Name: "app", Groups: []string{"users"}, Password: &recipes.Secret{Random: p("app.txt")}, Sudo: new(false)},
		&SSHInject{User: "root", Key: testKey},
		&SSHInject{User: "root", File: p("id.pub")},
		&Service{Name: "ssh.service", Enabled: new(true)},
		&Service{Name: "fstrim.timer", Enabled: new(false), Masked: new(true)},
		&Service{Name: "getty@tty1.service", Masked: new(false)},
		&Cron{Name: "backup-db", Schedule: "30 2 * * 1-5", User: "root", Command: "/usr/local/bin/backup --all"},
		&Cron{Name: "boot_job", Schedule: "@reboot", User: "ops", Command: "date > /tmp/booted"},
		&Fstab{Spec: "LABEL=data", File: "/data", VFSType: "ext4", MntOps: "defaults,nofail", PassNo: 2},
		&Fstab{Spec: "/dev/vdb2", File: "none", VFSType: "swap", MntOps: "defaults"},
		&Firstboot{Command: "ssh-keygen -A"},
		&Firstboot{Script: p("setup.sh")},
		&MachineIDReset{},
		&SELinuxRelabel{},
		&Sysprep{},
		&Sysprep{Selection: []string{"defaults", "-tmp-files", "+cron-spool"}, Operations: sysprepWithout(fsops.DefaultSysprepOperations(), "tmp-files", "cron-spool"),
			Keep: []string{"/srv/keep/", "/var/log/app/*"}, MachineID: "uninitialized"},
	}
	if len(r.Steps) != len(want) {
		t.Fatalf("got %d steps, want %d", len(r.Steps), len(want))
	}
	var kinds []string
	for i, w := range want {
		if got := r.Steps[i].Op; !reflect.DeepEqual(got, w) {
			t.Errorf("step %d:\n got %+v\nwant %+v", i+1, got, w)
		}
		kinds = append(kinds, w.Kind())
	}
	slices.Sort(kinds)
	if got := slices.Compact(kinds); !slices.Equal(got, systemKinds) {
		t.Errorf("test covers %v, want %v", got, systemKinds)
	}
	for _, k := range systemKinds {
		if !slices.Contains(recipes.Kinds(), k) {
			t.Errorf("kind %q is not registered", k)
		}
	}
}

func sysprepWithout(names []string, drop, add string) []string {
	var out []string
	for _, op := range fsops.SysprepOperations {
		if (slices.Contains(names, op.Name) && op.Name != drop) || op.Name == add {
			out = append(out, op.Name)
		}
	}
	return out
}

// Passwords never show up in descriptions, titles or formatted ops.
func TestSecretsStayHidden(t *testing.T) {
	src := "steps:\n  - root_password: {password: TopSecret1}\n  - password: {user: ops, password: TopSecret2}\n" +
		"  - user: {name: ops, password: TopSecret3}\n  - user: {name: ops, password: {password: TopSecret4}}\n"
	r, err := recipes.Parse("s.yaml", []byte(src), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range r.Steps {
		for _, s := range []string{st.Title(), st.Op.Describe(), fmt.Sprintf("%v", st.Op), fmt.Sprintf("%+v", st.Op), fmt.Sprintf("%#v", st.Op)} {
			if strings.Contains(s, "TopSecret") {
				t.Errorf("step %d shows the password: %s", st.Index, s)
			}
		}
	}
	// Nor in error messages about them.
	_, err = recipes.Parse("s.yaml", []byte("steps:\n  - root_password: {password: \"TopSecret\\nline2\", file: x}\n"), t.TempDir())
	if err == nil || strings.Contains(err.Error(), "TopSecret") {
		t.Errorf("error = %v", err)
	}
}

func TestParseSystemInvalid(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string // "$DIR" stands for the recipe directory
	}{
		// timezone
		{"timezone with dots", "steps:\n- timezone: ../../etc/passwd\n",
			[]string{`r.yaml:2:13: timezone: "../../etc/passwd" is not a time zone name like "Europe/Berlin" or "UTC"`}},
		{"timezone absolute", "steps:\n- timezone: /usr/share/zoneinfo/UTC\n",
			[]string{`r.yaml:2:13: timezone: "/usr/share/zoneinfo/UTC" is not a time zone name like "Europe/Berlin" or "UTC"`}},
		{"timezone list", "steps:\n- timezone: [UTC]\n",
			[]string{`r.yaml:2:13: timezone: expected a string, got a list`}},
		// root_password
		{"root_password empty mapping", "steps:\n- root_password: {}\n",
			[]string{`r.yaml:2:18: root_password: needs one of password, file, random, locked`}},
		{"root_password two sources", "steps:\n- root_password: {password: x, random: ./pw}\n",
			[]string{`r.yaml:2:40: root_password.random: give only one of password, file, random, locked (password is already set)`}},
		{"root_password locked false", "steps:\n- root_password: {locked: false}\n",
			[]string{
				`r.yaml:2:18: root_password: needs one of password, file, random, locked`,
				`r.yaml:2:27: root_password.locked: only true is meaningful; to unlock the account, set a password`,
			}},
		{"root_password empty password", "steps:\n- root_password: {password: \"\"}\n",
			[]string{`r.yaml:2:29: root_password.password: empty password`}},
		{"root_password multi-line password", "steps:\n- root_password: {password: \"a\\nb\"}\n",
			[]string{`r.yaml:2:29: root_password.password: the password must be a single line (no line breaks or NUL bytes)`}},
		{"root_password missing file", "steps:\n- root_password: {file: ./nope.txt}\n",
			[]string{`r.yaml:2:25: root_password.file: "./nope.txt" does not exist (looked for "$DIR/nope.txt")`}},
		{"root_password random into missing dir", "steps:\n- root_password: {random: ./no/such/dir/pw}\n",
			[]string{`r.yaml:2:27: root_password.random: directory "$DIR/no/such/dir" does not exist (for "./no/such/dir/pw")`}},
		{"root_password random is a directory", "steps:\n- root_password: {random: .}\n",
			[]string{`r.yaml:2:27: root_password.random: "." is a directory; name the file to write the password to`}},
		{"root_password is a string", "steps:\n- root_password: secret\n",
			[]string{`r.yaml:2:18: root_password: expected a mapping, got string "secret"`}},
		{"root_password misspelled key", "steps:\n- root_password: {pasword: x}\n",
			[]string{
				`r.yaml:2:18: root_password: needs one of password, file, random, locked`,
				`r.yaml:2:19: root_password: unknown key "pasword"; did you mean "password"?`,
			}},
		// password
		{"password without user", "steps:\n- password: {password: x}\n",
			[]string{`r.yaml:2:13: password: missing required key "user"`}},
		{"password without source", "steps:\n- password: {user: ops}\n",
			[]string{`r.yaml:2:13: password: needs one of password, file, random`}},
		{"password locked is not a key", "steps:\n- password: {user: ops, locked: true}\n",
			[]string{
				`r.yaml:2:13: password: needs one of password, file, random`,
				`r.yaml:2:25: password: unknown key "locked"; valid keys: user, password, file, random`,
			}},
		{"password bad user", "steps:\n- password: {user: Bad User, password: x}\n",
			[]string{`r.yaml:2:20: password.user: "Bad User" is not a valid user name (lower-case letters, digits, '_', '-' and '.', starting with a letter or '_', at most 32 characters)`}},
		// user
		{"user without name", "steps:\n- user: {shell: /bin/sh}\n",
			[]string{`r.yaml:2:9: user: missing required key "name"`}},
		{"user name with a colon", "steps:\n- user: {name: \"a:b\"}\n",
			[]string{`r.yaml:2:16: user.name: "a:b" is not a valid user name (lower-case letters, digits, '_', '-' and '.', starting with a letter or '_', at most 32 characters)`}},
		{"user uid negative", "steps:\n- user: {name: a, uid: -1}\n",
			[]string{`r.yaml:2:24: user.uid: -1 is out of range (0 to 4294967294)`}},
		{"user uid string", "steps:\n- user: {name: a, uid: abc}\n",
			[]string{`r.yaml:2:24: user.uid: expected an integer, got string "abc"`}},
		{"user bad group", "steps:\n- user: {name: a, groups: [sudo, \"-x\"]}\n",
			[]string{`r.yaml:2:34: user.groups[1]: "-x" is not a valid group name (lower-case letters, digits, '_', '-' and '.', starting with a letter or '_', at most 32 characters)`}},
		{"user groups mapping", "steps:\n- user: {name: a, groups: {sudo: yes}}\n",
			[]string{`r.yaml:2:27: user.groups: expected a list, got a mapping`}},
		{"user relative shell", "steps:\n- user: {name: a, shell: bash}\n",
			[]string{`r.yaml:2:26: user.shell: "bash" is not absolute; paths in the image start with /`}},
		{"user bad key", "steps:\n- user: {name: a, ssh_authorized_keys: [./id.pub]}\n",
			[]string{`r.yaml:2:41: user.ssh_authorized_keys[0]: not an OpenSSH public key (want e.g. "ssh-ed25519 AAAA... user@host")`}},
		{"user sudo string", "steps:\n- user: {name: a, sudo: always}\n",
			[]string{`r.yaml:2:25: user.sudo: expected true or false, got string "always"`}},
		{"user password empty", "steps:\n- user: {name: a, password: \"\"}\n",
			[]string{`r.yaml:2:29: user.password: empty password`}},
		{"user password mapping with two", "steps:\n- user: {name: a, password: {file: ./x, random: ./y}}\n",
			[]string{
				`r.yaml:2:36: user.password.file: "./x" does not exist (looked for "$DIR/x")`,
				`r.yaml:2:49: user.password.random: give only one of password, file, random (file is already set)`,
			}},
		{"user unknown key", "steps:\n- user: {name: a, gruops: [x]}\n",
			[]string{`r.yaml:2:19: user: unknown key "gruops"; did you mean "groups"?`}},
		// ssh_inject
		{"ssh_inject without key", "steps:\n- ssh_inject: {user: root}\n",
			[]string{`r.yaml:2:15: ssh_inject: needs one of key, file`}},
		{"ssh_inject key and file", "steps:\n- ssh_inject: {user: root, key: \"" + testKey + "\", file: ./k}\n",
			[]string{
				`r.yaml:2:` + strconv.Itoa(43+len(testKey)) + `: ssh_inject.file: "./k" does not exist (looked for "$DIR/k")`,
				`r.yaml:2:` + strconv.Itoa(43+len(testKey)) + `: ssh_inject.file: give only one of key, file (key is already set)`,
			}},
		{"ssh_inject private key", "steps:\n- ssh_inject: {user: root, key: \"-----BEGIN OPENSSH PRIVATE KEY-----\"}\n",
			[]string{`r.yaml:2:33: ssh_inject.key: not an OpenSSH public key (want e.g. "ssh-ed25519 AAAA... user@host")`}},
		{"ssh_inject without user", "steps:\n- ssh_inject: {key: \"" + testKey + "\"}\n",
			[]string{`r.yaml:2:15: ssh_inject: missing required key "user"`}},
		// service
		{"service without action", "steps:\n- service: {name: ssh}\n",
			[]string{`r.yaml:2:12: service: needs enabled or masked (or both)`}},
		{"service enabled and masked", "steps:\n- service: {name: ssh, enabled: true, masked: true}\n",
			[]string{`r.yaml:2:33: service.enabled: a masked unit cannot be enabled; drop enabled or set masked: false`}},
		{"service bad name", "steps:\n- service: {name: ../ssh, enabled: true}\n",
			[]string{`r.yaml:2:19: service.name: "../ssh.service" is not a systemd unit name like "ssh" or "fstrim.timer"`}},
		{"service name with slash", "steps:\n- service: {name: a/b.service, enabled: true}\n",
			[]string{`r.yaml:2:19: service.name: "a/b.service" is not a systemd unit name like "ssh" or "fstrim.timer"`}},
		{"service enabled string", "steps:\n- service: {name: ssh, enabled: on}\n",
			[]string{`r.yaml:2:33: service.enabled: expected true or false, got string "on"`}},
		{"service without name", "steps:\n- service: {enabled: true}\n",
			[]string{`r.yaml:2:12: service: missing required key "name"`}},
		// cron
		{"cron name with a dot", "steps:\n- cron: {name: job.sh, schedule: \"@daily\", command: x}\n",
			[]string{`r.yaml:2:16: cron.name: "job.sh" may only contain letters, digits, '_' and '-' (cron ignores other file names in /etc/cron.d)`}},
		{"cron four fields", "steps:\n- cron: {name: j, schedule: \"* * * *\", command: x}\n",
			[]string{`r.yaml:2:29: cron.schedule: "* * * *" is not five fields (minute hour day-of-month month day-of-week) or one of @reboot, @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly`}},
		{"cron unknown shortcut", "steps:\n- cron: {name: j, schedule: \"@sometimes\", command: x}\n",
			[]string{`r.yaml:2:29: cron.schedule: "@sometimes" is not five fields (minute hour day-of-month month day-of-week) or one of @reboot, @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly`}},
		{"cron multi-line command", "steps:\n- cron: {name: j, schedule: \"@daily\", command: \"a\\nb\"}\n",
			[]string{`r.yaml:2:48: cron.command: command must be a single line (no line breaks or NUL bytes)`}},
		{"cron missing command", "steps:\n- cron: {name: j, schedule: \"@daily\"}\n",
			[]string{`r.yaml:2:9: cron: missing required key "command"`}},
		{"cron bad user", "steps:\n- cron: {name: j, schedule: \"@daily\", user: \"root wheel\", command: x}\n",
			[]string{`r.yaml:2:45: cron.user: "root wheel" is not a valid user name (lower-case letters, digits, '_', '-' and '.', starting with a letter or '_', at most 32 characters)`}},
		// fstab
		{"fstab missing vfstype", "steps:\n- fstab: {spec: LABEL=data, file: /data}\n",
			[]string{`r.yaml:2:10: fstab: missing required key "vfstype"`}},
		{"fstab relative file", "steps:\n- fstab: {spec: LABEL=data, file: data, vfstype: ext4}\n",
			[]string{`r.yaml:2:35: fstab.file: "data" is not absolute; want a mount point like /data (or none for swap)`}},
		{"fstab mntops with space", "steps:\n- fstab: {spec: LABEL=data, file: /data, vfstype: ext4, mntops: \"defaults, nofail\"}\n",
			[]string{`r.yaml:2:65: fstab.mntops: mntops must not contain spaces`}},
		{"fstab passno negative", "steps:\n- fstab: {spec: LABEL=data, file: /data, vfstype: ext4, passno: -1}\n",
			[]string{`r.yaml:2:65: fstab.passno: -1 is out of range (0 to 9)`}},
		{"fstab freq string", "steps:\n- fstab: {spec: LABEL=data, file: /data, vfstype: ext4, freq: daily}\n",
			[]string{`r.yaml:2:63: fstab.freq: expected an integer, got string "daily"`}},
		{"fstab empty spec", "steps:\n- fstab: {spec: \"\", file: /data, vfstype: ext4}\n",
			[]string{`r.yaml:2:17: fstab.spec: spec is empty`}},
		// firstboot
		{"firstboot empty", "steps:\n- firstboot: {}\n",
			[]string{`r.yaml:2:14: firstboot: needs one of command, script`}},
		{"firstboot both", "steps:\n- firstboot: {command: x, script: ./s.sh}\n",
			[]string{
				`r.yaml:2:35: firstboot.script: "./s.sh" does not exist (looked for "$DIR/s.sh")`,
				`r.yaml:2:35: firstboot.script: give only one of command, script (command is already set)`,
			}},
		{"firstboot blank command", "steps:\n- firstboot: {command: \"  \"}\n",
			[]string{`r.yaml:2:24: firstboot.command: command is empty`}},
		{"firstboot is a string", "steps:\n- firstboot: ssh-keygen -A\n",
			[]string{`r.yaml:2:14: firstboot: expected a mapping, got string "ssh-keygen -A"`}},
		// machine_id_reset, selinux_relabel
		{"machine_id_reset false", "steps:\n- machine_id_reset: false\n",
			[]string{`r.yaml:2:21: machine_id_reset: only true is meaningful; remove the step instead`}},
		{"machine_id_reset string", "steps:\n- machine_id_reset: yes please\n",
			[]string{`r.yaml:2:21: machine_id_reset: expected true, got string "yes please"`}},
		{"selinux_relabel null", "steps:\n- selinux_relabel:\n",
			[]string{`r.yaml:2:19: selinux_relabel: expected true, got null`}},
		{"selinux_relabel false", "steps:\n- selinux_relabel: false\n",
			[]string{`r.yaml:2:20: selinux_relabel: only true is meaningful; remove the step instead`}},
		// sysprep
		{"sysprep unknown operation", "steps:\n- sysprep: {operations: [defaults, -tmp-file]}\n",
			[]string{`r.yaml:2:25: sysprep.operations: "tmp-file" is not a sysprep operation; did you mean "tmp-files"? (imgbake sysprep --list-operations lists them)`}},
		{"sysprep only removals", "steps:\n- sysprep: {operations: -tmp-files}\n",
			[]string{`r.yaml:2:25: sysprep.operations: "-tmp-files" only removes operations, and the selection starts empty: start from the defaults, e.g. defaults,-tmp-files`}},
		{"sysprep imgbake-state", "steps:\n- sysprep: {operations: [all]}\n",
			[]string{"r.yaml:2:25: sysprep.operations: imgbake-state cannot run as a step (the run records its state when it ends; all includes it: write all,-imgbake-state); " +
				"run `imgbake sysprep --operations defaults,imgbake-state` on the result instead"}},
		{"sysprep relative keep", "steps:\n- sysprep: {keep: [var/log]}\n",
			[]string{`r.yaml:2:20: sysprep.keep[0]: keep "var/log": must be an absolute path inside the image (a glob such as /var/log/app/*)`}},
		{"sysprep bad glob", "steps:\n- sysprep: {keep: [\"/var/[log\"]}\n",
			[]string{`r.yaml:2:20: sysprep.keep[0]: keep "/var/[log": syntax error in pattern`}},
		{"sysprep machine_id", "steps:\n- sysprep: {machine_id: random}\n",
			[]string{`r.yaml:2:25: sysprep.machine_id: "random": want empty or uninitialized`}},
		{"sysprep unknown key", "steps:\n- sysprep: {operation: [defaults]}\n",
			[]string{`r.yaml:2:13: sysprep: unknown key "operation"; did you mean "operations"?`}},
		{"sysprep operation not a string", "steps:\n- sysprep: {operations: [defaults, {a: 1}]}\n",
			[]string{`r.yaml:2:36: sysprep.operations[1]: expected a string, got a mapping`}},
		{"sysprep null", "steps:\n- sysprep:\n",
			[]string{`r.yaml:2:11: sysprep: expected a mapping, got null`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			r, err := recipes.Parse("r.yaml", []byte(tt.src), dir)
			if err == nil {
				t.Fatalf("Parse succeeded with %d steps, want errors", len(r.Steps))
			}
			if !errors.Is(err, recipes.ErrInvalid) {
				t.Errorf("errors.Is(err, ErrInvalid) = false for %v", err)
			}
			want := strings.ReplaceAll(strings.Join(tt.want, "\n"), "$DIR", dir)
			if got := err.Error(); got != want {
				t.Errorf("errors differ\n got: %s\nwant: %s", got, want)
			}
		})
	}
}
