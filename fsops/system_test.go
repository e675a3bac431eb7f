package fsops

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"testing"
)

func TestSetFstabEntry(t *testing.T) {
	data := FstabEntry{Spec: "LABEL=data", File: "/data", VFSType: "ext4", MntOps: "defaults,nofail", PassNo: 2}
	const root = "# comment\nUUID=abc / ext4 errors=remount-ro 0 1\n"
	tests := []struct {
		name, in string
		e        FstabEntry
		want     string
		changed  bool
	}{
		{"append", root, data, root + "LABEL=data\t/data\text4\tdefaults,nofail\t0\t2\n", true},
		{"append without final newline", "UUID=abc / ext4 defaults 0 1", data,
			"UUID=abc / ext4 defaults 0 1\nLABEL=data\t/data\text4\tdefaults,nofail\t0\t2\n", true},
		{"empty file", "", data, "LABEL=data\t/data\text4\tdefaults,nofail\t0\t2\n", true},
		{"same entry spelled differently is kept", root + "LABEL=data   /data/  ext4 defaults,nofail 0 2\n", data,
			root + "LABEL=data   /data/  ext4 defaults,nofail 0 2\n", false},
		{"replace by mount point", root + "/dev/vdb1 /data xfs defaults 0 0\n# end\n", data,
			root + "LABEL=data\t/data\text4\tdefaults,nofail\t0\t2\n# end\n", true},
		{"duplicates dropped", root + "/dev/vdb1 /data xfs defaults 0 0\n/dev/vdc1 /data xfs defaults\n", data,
			root + "LABEL=data\t/data\text4\tdefaults,nofail\t0\t2\n", true},
		{"commented entry is not an entry", root + "#LABEL=data /data ext4 defaults,nofail 0 2\n", data,
			root + "#LABEL=data /data ext4 defaults,nofail 0 2\nLABEL=data\t/data\text4\tdefaults,nofail\t0\t2\n", true},
		{"missing fields are defaults", "/dev/vdb1 /srv ext4\n", FstabEntry{Spec: "/dev/vdb1", File: "/srv", VFSType: "ext4", MntOps: "defaults"},
			"/dev/vdb1 /srv ext4\n", false},
		{"swap keyed by spec", "/dev/vda2 none swap sw 0 0\n", FstabEntry{Spec: "/dev/vdb2", File: "none", VFSType: "swap", MntOps: "sw"},
			"/dev/vda2 none swap sw 0 0\n/dev/vdb2\tnone\tswap\tsw\t0\t0\n", true},
		{"spaces escaped", "", FstabEntry{Spec: "LABEL=my data", File: "/mnt/my data", VFSType: "vfat", MntOps: "defaults"},
			`LABEL=my\040data` + "\t" + `/mnt/my\040data` + "\tvfat\tdefaults\t0\t0\n", true},
		{"escaped entry matches", `LABEL=my\040data /mnt/my\040data vfat defaults 0 0` + "\n",
			FstabEntry{Spec: "LABEL=my data", File: "/mnt/my data", VFSType: "vfat", MntOps: "defaults"},
			`LABEL=my\040data /mnt/my\040data vfat defaults 0 0` + "\n", false},
	}
	for _, tt := range tests {
		got, changed := setFstabEntry(tt.in, tt.e)
		if got != tt.want || changed != tt.changed {
			t.Errorf("%s:\n got %q, %v\nwant %q, %v", tt.name, got, changed, tt.want, tt.changed)
		}
		if again, ch := setFstabEntry(got, tt.e); ch || again != got {
			t.Errorf("%s: not idempotent: %q", tt.name, again)
		}
	}
}

func TestParseInstall(t *testing.T) {
	unit := `[Unit]
Description=x
WantedBy=not-this.target

[Service]
ExecStart=/bin/true

[Install]
# comment
WantedBy=multi-user.target \
  graphical.target
RequiredBy=a.target
RequiredBy=
RequiredBy=b.target
Alias=sshd.service
Also=ssh.socket
DefaultInstance=tty1
`
	got := parseInstall(unit)
	want := installSection{WantedBy: []string{"multi-user.target", "graphical.target"}, RequiredBy: []string{"b.target"},
		Alias: []string{"sshd.service"}, Also: []string{"ssh.socket"}, DefaultInstance: "tty1"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseInstall = %+v, want %+v", got, want)
	}
	if !parseInstall("[Unit]\nDescription=static\n").empty() {
		t.Error("a unit without [Install] is not static")
	}
	for _, tt := range []struct{ in, tmpl, inst string }{
		{"getty@tty1.service", "getty@.service", "tty1"},
		{"getty@.service", "getty@.service", ""},
		{"ssh.service", "ssh.service", ""},
	} {
		tmpl, inst, _ := splitTemplate(tt.in)
		if tmpl != tt.tmpl || inst != tt.inst {
			t.Errorf("splitTemplate(%q) = %q, %q", tt.in, tmpl, inst)
		}
	}
}

func TestKeyBlob(t *testing.T) {
	const blob = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx0ZXN0"
	for _, line := range []string{blob, blob + " me@host", `from="10.0.0.0/8",no-pty ` + blob + " c", "  " + blob + "  \n"} {
		if got := keyBlob(line); got != blob {
			t.Errorf("keyBlob(%q) = %q", line, got)
		}
	}
	for _, line := range []string{"", "# comment", "ssh-ed25519", "AAAA"} {
		if got := keyBlob(line); got != "" {
			t.Errorf("keyBlob(%q) = %q, want none", line, got)
		}
	}
}

func TestSlugAndPassphrase(t *testing.T) {
	for in, want := range map[string]string{"ssh-keygen -A": "ssh-keygen-a", "Setup.SH": "setup-sh", "!!!": "script",
		"echo $(date) > /root/very/long/path/for/a/first/boot/marker": "echo-date-root-very-long-path-for-a-firs"} {
		if got := slug(in); got != want {
			t.Errorf("slug(%q) = %q, want %q", in, got, want)
		}
	}
	re := regexp.MustCompile(`^[a-z2-9]{5}(-[a-z2-9]{5}){4}$`)
	seen := map[string]bool{}
	for range 100 {
		p := GeneratePassphrase()
		if !re.MatchString(p) || seen[p] {
			t.Fatalf("GeneratePassphrase() = %q (seen before: %v)", p, seen[p])
		}
		seen[p] = true
	}
}

func TestSecretFiles(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "pw.txt")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(p, []byte("old\n"), 0o644))
	must(WriteSecretFile(p, "new secret"))
	fi, err := os.Stat(p)
	must(err)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode())
	}
	if got, err := ReadSecretFile(p); err != nil || got != "new secret" {
		t.Errorf("ReadSecretFile = %q, %v", got, err)
	}
	must(os.WriteFile(p, []byte("first line \r\nsecond\n"), 0o600))
	if got, err := ReadSecretFile(p); err != nil || got != "first line " {
		t.Errorf("ReadSecretFile = %q, %v", got, err)
	}
	must(os.WriteFile(p, []byte("\nsecond\n"), 0o600))
	if _, err := ReadSecretFile(p); err == nil {
		t.Error("an empty first line is accepted")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
}
