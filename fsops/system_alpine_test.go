package fsops_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgbake/imgbake/fsops"
	"github.com/imgbake/imgbake/fsops/fsopstest"
)

// alpineRoot is a tree with Alpine's account files and OpenRC's layout;
// adduser is a link to busybox when busybox is true.
func alpineRoot(t *testing.T, busybox bool) string {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"bin", "usr/sbin", "etc/init.d", "etc/runlevels/default", "etc/runlevels/boot", "etc/local.d", "home", "root"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"etc/passwd":      "root:x:0:0:root:/root:/bin/ash\nnobody:x:65534:65534:nobody:/:/sbin/nologin\n",
		"etc/group":       "root:x:0:root\nwheel:x:10:root\nusers:x:100:\n",
		"etc/shadow":      "root:*::0:::::\nnobody:!::0:::::\n",
		"etc/init.d/sshd": "#!/sbin/openrc-run\n",
		"bin/busybox":     "",
		"bin/ash":         "",
	}
	for p, c := range files {
		if err := os.WriteFile(filepath.Join(root, p), []byte(c), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if busybox {
		if err := os.Symlink("/bin/busybox", filepath.Join(root, "usr/sbin/adduser")); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func readTree(t *testing.T, root, p string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, p))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestEnsureUserWithoutTools(t *testing.T) {
	root := alpineRoot(t, false)
	s := fsopstest.New(t, root, nil)
	ctx := context.Background()
	pw := "pw-1"
	res, err := fsops.EnsureUser(ctx, s, fsops.UserSpec{Name: "ops", Groups: []string{"wheel"}, Shell: "/bin/ash", Password: &pw})
	if err != nil || !res.Changed {
		t.Fatalf("EnsureUser: %+v, %v", res, err)
	}
	if got := readTree(t, root, "etc/passwd"); !strings.HasSuffix(got, "\nops:x:1000:1000::/home/ops:/bin/ash\n") {
		t.Errorf("passwd:\n%s", got)
	}
	if got := readTree(t, root, "etc/group"); got != "root:x:0:root\nwheel:x:10:root,ops\nusers:x:100:\nops:x:1000:\n" {
		t.Errorf("group:\n%s", got)
	}
	shadow := readTree(t, root, "etc/shadow")
	if !strings.Contains(shadow, "\nops:$6$") {
		t.Errorf("shadow:\n%s", shadow)
	}
	if fi, err := os.Stat(filepath.Join(root, "home/ops")); err != nil || !fi.IsDir() {
		t.Errorf("home: %v", err)
	}
	for _, c := range s.Calls() {
		if c.Argv != nil && (c.Argv[0] == "useradd" || c.Argv[0] == "chpasswd" || c.Argv[0] == "adduser") {
			t.Errorf("ran %v on an image without it", c.Argv)
		}
	}
	// Again: nothing to do.
	res, err = fsops.EnsureUser(ctx, s, fsops.UserSpec{Name: "ops", Groups: []string{"wheel"}, Shell: "/bin/ash", Password: &pw})
	if err != nil || res.Changed {
		t.Errorf("second EnsureUser: %+v, %v", res, err)
	}
	// usermod's work without usermod.
	res, err = fsops.EnsureUser(ctx, s, fsops.UserSpec{Name: "ops", Groups: []string{"users"}, Shell: "/bin/busybox"})
	if err != nil || !res.Changed {
		t.Fatalf("update: %+v, %v", res, err)
	}
	if got := readTree(t, root, "etc/group"); !strings.Contains(got, "\nusers:x:100:ops\n") {
		t.Errorf("group after update:\n%s", got)
	}
	if got := readTree(t, root, "etc/passwd"); !strings.Contains(got, "\nops:x:1000:1000::/home/ops:/bin/busybox\n") {
		t.Errorf("passwd after update:\n%s", got)
	}
}

func TestEnsureUserBusyboxAdduser(t *testing.T) {
	root := alpineRoot(t, true)
	s := fsopstest.New(t, root, func(c fsopstest.Call) fsopstest.Reply { return fsopstest.Reply{} })
	uid := 1500
	if _, err := fsops.EnsureUser(context.Background(), s, fsops.UserSpec{Name: "ops", UID: &uid, Groups: []string{"wheel"}, Shell: "/bin/ash"}); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, c := range s.Calls() {
		if c.Argv != nil && (c.Argv[0] == "adduser" || c.Argv[0] == "addgroup") {
			lines = append(lines, c.Line())
		}
	}
	if want := []string{"adduser -D -u 1500 -s /bin/ash ops", "addgroup ops wheel"}; strings.Join(lines, "|") != strings.Join(want, "|") {
		t.Errorf("commands %q, want %q", lines, want)
	}
}

func TestServiceOpenRC(t *testing.T) {
	root := alpineRoot(t, false)
	s := fsopstest.New(t, root, nil)
	ctx := context.Background()
	on, off := true, false
	res, err := fsops.Service(ctx, s, fsops.ServiceSpec{Name: "sshd.service", Enabled: &on})
	if err != nil || !res.Changed {
		t.Fatalf("enable: %+v, %v", res, err)
	}
	if target, err := os.Readlink(filepath.Join(root, "etc/runlevels/default/sshd")); err != nil || target != "/etc/init.d/sshd" {
		t.Errorf("runlevel link %q, %v", target, err)
	}
	if res, err := fsops.Service(ctx, s, fsops.ServiceSpec{Name: "sshd.service", Enabled: &on}); err != nil || res.Changed {
		t.Errorf("enable again: %+v, %v", res, err)
	}
	if res, err := fsops.Service(ctx, s, fsops.ServiceSpec{Name: "sshd.service", Enabled: &off}); err != nil || !res.Changed {
		t.Errorf("disable: %+v, %v", res, err)
	}
	if _, err := os.Lstat(filepath.Join(root, "etc/runlevels/default/sshd")); !os.IsNotExist(err) {
		t.Errorf("runlevel link left after disable: %v", err)
	}
	for _, tc := range []struct {
		spec fsops.ServiceSpec
		want string
	}{
		{fsops.ServiceSpec{Name: "nginx.service", Enabled: &on}, "the image has no /etc/init.d/nginx"},
		{fsops.ServiceSpec{Name: "sshd.service", Masked: &on}, "cannot mask"},
		{fsops.ServiceSpec{Name: "fstrim.timer", Enabled: &on}, "no timer units"},
	} {
		if _, err := fsops.Service(ctx, s, tc.spec); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.spec, err, tc.want)
		}
	}
}

func TestFirstbootOpenRC(t *testing.T) {
	root := alpineRoot(t, false)
	s := fsopstest.New(t, root, nil)
	res, err := fsops.Firstboot(context.Background(), s, "hello", fsops.FirstbootCommand("echo hello"))
	if err != nil || !res.Changed {
		t.Fatalf("Firstboot: %+v, %v", res, err)
	}
	if got := readTree(t, root, "etc/local.d/imgbake-firstboot.start"); !strings.Contains(got, "exec "+fsops.FirstbootDir+"/firstboot.sh") {
		t.Errorf("local.d hook %q", got)
	}
	if target, err := os.Readlink(filepath.Join(root, "etc/runlevels/default/local")); err != nil || target != "/etc/init.d/local" {
		t.Errorf("local in the default runlevel: %q, %v", target, err)
	}
	if !strings.Contains(res.Detail, "local service") {
		t.Errorf("detail %q does not say local is missing", res.Detail)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/systemd")); err == nil {
		t.Error("systemd files written on an OpenRC image")
	}
}
