package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imgbake/imgbake/internal/bootvm"
	"github.com/imgbake/imgbake/internal/vmtest"
	"github.com/imgbake/imgbake/testimages"
)

// serveToImage serves body on the host's loopback and returns the URL the
// appliance reaches it at (QEMU's user-mode network maps 10.0.2.2 to the
// host's 127.0.0.1).
func serveToImage(t *testing.T, body string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, body)
	}))
	t.Cleanup(srv.Close)
	return fmt.Sprintf("http://10.0.2.2:%d/payload.txt", srv.Listener.Addr().(*net.TCPAddr).Port)
}

// imageEntries are the entries of Tree (read with debugfs) at or below
// any of prefixes.
func imageEntries(t *testing.T, disk string, prefixes ...string) map[string]string {
	t.Helper()
	tree, err := testimages.Tree(t, disk, "raw", 0)
	if err != nil {
		t.Fatalf("reading the image with debugfs: %v", err)
	}
	out := map[string]string{}
	for p, d := range tree {
		for _, pre := range prefixes {
			if p == pre || strings.HasPrefix(p, pre+"/") {
				out[p] = d
			}
		}
	}
	return out
}

func sameEntries(t *testing.T, what string, before, after map[string]string) {
	t.Helper()
	for p, d := range before {
		if after[p] != d {
			t.Errorf("%s: %s was %q, is %q after the session", what, p, d, after[p])
		}
	}
	for p, d := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("%s: %s (%s) appeared in the image", what, p, d)
		}
	}
}

// execIn runs argv in the session and fails the test unless it
// exits 0; it returns the command's stdout.
func execIn(t *testing.T, name string, argv ...string) string {
	t.Helper()
	r := imgbake(t, append([]string{"session", "exec", name, "--"}, argv...)...)
	if r.code != 0 {
		t.Errorf("session exec %q: %s", argv, r)
	}
	return r.stdout
}

// TestSessionNetworkForCommands: with `session start --network`, a plain
// `session exec` (not only package steps) has the interface up, sees the
// appliance's resolver, resolves the Debian archive through it where the
// host can resolve names at all, and fetches from a server on the host; the image's /etc/resolv.conf — a file (immutable),
// a symlink into /run that only a booted system fills, or missing — is
// exactly as before when the session is committed, read back with debugfs.
func TestSessionNetworkForCommands(t *testing.T) {
	sessionTest(t)
	disk := testimages.Fresh(t, testimages.Python)
	url := serveToImage(t, "served to the image\n")
	fetch := fmt.Sprintf("import urllib.request; print(urllib.request.urlopen(%q, timeout=60).read().decode(), end='')", url)

	for _, c := range []struct {
		name, prepare string
	}{
		{"an immutable regular file", "chattr +i /etc/resolv.conf"},
		{"a symlink into /run", "chattr -i /etc/resolv.conf; rm -f /etc/resolv.conf; ln -s ../run/systemd/resolve/stub-resolv.conf /etc/resolv.conf"},
		{"missing", "rm -f /etc/resolv.conf"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if r := imgbake(t, "session", "start", "--name", "prep", "-a", disk); r.code != 0 {
				t.Fatalf("session start: %s", r)
			}
			execIn(t, "prep", "sh", "-c", c.prepare)
			if r := imgbake(t, "session", "stop", "prep"); r.code != 0 {
				t.Fatalf("session stop: %s", r)
			}
			before := imageEntries(t, disk, "/etc/resolv.conf", "/etc/.resolv.conf.imgbake-saved")
			t.Logf("the image's resolv.conf: %v", before)

			if r := imgbake(t, "session", "start", "--network", "--name", "net", "-a", disk); r.code != 0 {
				t.Fatalf("session start --network: %s", r)
			}
			if out := execIn(t, "net", "cat", "/etc/resolv.conf"); out != "nameserver 10.0.2.3\n" {
				t.Errorf("the resolver commands see: %q", out)
			}
			// Names resolve through QEMU's resolver, which forwards to the
			// host's: where the host resolves none (a sandbox without DNS)
			// there is no answer to check, and the rest of the test stands.
			if hostErr := hostResolves("deb.debian.org"); hostErr != nil {
				t.Logf("not checked: a name resolved in the image; the host itself cannot resolve deb.debian.org (%v)", hostErr)
			} else if dns := imgbake(t, "session", "exec", "net", "--", "getent", "hosts", "deb.debian.org"); dns.code != 0 || !strings.Contains(dns.stdout, "deb.debian.org") {
				t.Errorf("getent hosts deb.debian.org in the image (the host resolves it): %s", dns)
			}
			if out := execIn(t, "net", "python3", "-c", fetch); out != "served to the image\n" {
				t.Errorf("fetched from the host: %q", out)
			}
			if r := imgbake(t, "session", "stop", "net"); r.code != 0 {
				t.Fatalf("session stop: %s", r)
			}
			after := imageEntries(t, disk, "/etc/resolv.conf", "/etc/.resolv.conf.imgbake-saved")
			sameEntries(t, "resolv.conf", before, after)
			if fi, err := testimages.StatDebugfs(t, disk, "raw", 0, "/etc/resolv.conf"); err == nil && fi.IsSymlink {
				if fi.Target != "../run/systemd/resolve/stub-resolv.conf" {
					t.Errorf("the symlink points at %q now", fi.Target)
				}
			}
		})
	}
}

// hostResolves reports why the host cannot resolve name, or nil.
func hostResolves(name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := net.DefaultResolver.LookupHost(ctx, name)
	return err
}

// TestGuestEnvLikeBooted: commands see what a booted system gives them —
// tmpfs /dev/shm (a multiprocessing lock works) and /run, /dev/fd and the
// standard stream links, /dev/disk/by-uuid|by-label|by-path links to the
// image's devices — and none of it is in the committed image: its /run and
// /dev are entry for entry what they were (debugfs).
func TestGuestEnvLikeBooted(t *testing.T) {
	sessionTest(t)
	disk := testimages.Fresh(t, testimages.Python)
	info := testimages.InfoOf(t, testimages.Python)
	before := imageEntries(t, disk, "/run", "/dev")

	if r := imgbake(t, "session", "start", "--name", "env", "-a", disk); r.code != 0 {
		t.Fatalf("session start: %s", r)
	}
	if out := execIn(t, "env", "python3", "-c", "import multiprocessing; multiprocessing.Lock(); print('lock')"); out != "lock\n" {
		t.Errorf("a multiprocessing lock: %q", out)
	}
	if out := execIn(t, "env", "stat", "-f", "-c", "%T", "/dev/shm", "/run"); out != "tmpfs\ntmpfs\n" {
		t.Errorf("/dev/shm and /run are %q, want tmpfs", out)
	}
	if out := execIn(t, "env", "sh", "-c", "echo via-fd > /dev/stdout; readlink /dev/fd; test -d /run/lock && echo lock-dir"); out != "via-fd\n/proc/self/fd\nlock-dir\n" {
		t.Errorf("/dev/stdout, /dev/fd, /run/lock: %q", out)
	}
	byUUID := execIn(t, "env", "readlink", "-f", "/dev/disk/by-uuid/"+info.RootUUID, "/dev/disk/by-label/"+info.Label)
	if byUUID != "/dev/vda\n/dev/vda\n" {
		t.Errorf("/dev/disk/by-uuid and by-label of the root: %q", byUUID)
	}
	if out := execIn(t, "env", "sh", "-c", "ls /dev/disk/by-path"); !strings.HasPrefix(out, "pci-0000:") {
		t.Errorf("/dev/disk/by-path: %q", out)
	}
	// What commands leave there goes with the session.
	execIn(t, "env", "sh", "-c", "echo x > /run/left-behind; echo y > /dev/shm/left-behind; mkdir -p /run/lock/sub")
	if r := imgbake(t, "session", "stop", "env"); r.code != 0 {
		t.Fatalf("session stop: %s", r)
	}
	sameEntries(t, "/run and /dev", before, imageEntries(t, disk, "/run", "/dev"))
}

// hostArchive rebuilds the host's installed pkgs (and what they need that
// the image at disk lacks) as .debs with testimages/hostdebs, indexes them
// with dpkg-scanpackages and serves them on the host's loopback. It returns
// the APT source line the appliance reaches the archive with.
func hostArchive(t *testing.T, disk, format string, pkgs ...string) string {
	t.Helper()
	vmtest.LookPath(t, "dpkg-scanpackages", "dpkg-dev")
	files, err := testimages.ReadFiles(t, disk, format, 0, "/var/lib/dpkg/status", "/etc/os-release")
	must(t, err)
	repo, err := bootvm.HostArchive(context.Background(), repoRoot(t), t.TempDir(), files["/var/lib/dpkg/status"], files["/etc/os-release"], pkgs...)
	must(t, err)
	t.Logf("the archive: %d packages", bootvm.ArchivePackages(repo))
	source, stop, err := bootvm.ServeArchive(repo)
	must(t, err)
	t.Cleanup(stop)
	return source
}

// TestAnsibleNetworkTasks: with ansible_imgbake_network=true, a play's
// ansible.builtin.apt task installs a package from an archive over HTTP
// (the module installs python3-apt first) and ansible.builtin.get_url
// downloads from a server on the host, both through the session's network;
// the image holds the package and the file afterwards (debugfs). The
// archive is the host's own packages served on its loopback, reached by
// address: the test needs no DNS (TestSessionNetworkForCommands resolves).
func TestAnsibleNetworkTasks(t *testing.T) {
	tmp, _ := sessionTest(t)
	env := ansibleEnv(t, tmp)
	disk := testimages.Fresh(t, testimages.Python)
	const pkg = "less"
	source := hostArchive(t, disk, "raw", "python3-apt", pkg)
	payloadURL := serveToImage(t, "fetched by get_url\n")
	vars, err := json.Marshal(map[string]string{"disk": disk, "apt_source": source, "package": pkg, "payload_url": payloadURL})
	must(t, err)
	out, code, took := runPlaybook(t, env, "network.yml", "-e", string(vars))
	t.Logf("the play took %s", took.Round(100*time.Millisecond))
	if code != 0 || !strings.Contains(out, "changes committed into the image") {
		t.Fatalf("ansible-playbook exited %d:\n%s", code, out)
	}
	files, err := testimages.ReadFiles(t, disk, "raw", 0, "/root/payload.txt", "/var/lib/dpkg/status")
	must(t, err)
	if string(files["/root/payload.txt"]) != "fetched by get_url\n" {
		t.Errorf("/root/payload.txt = %q", files["/root/payload.txt"])
	}
	status := string(files["/var/lib/dpkg/status"])
	for _, p := range []string{pkg, "python3-apt"} {
		if !strings.Contains(status, "Package: "+p+"\nStatus: install ok installed\n") {
			t.Errorf("%s is not installed in the image", p)
		}
	}
	if fi, err := testimages.Stat(t, disk, "raw", 0, "/usr/bin/less"); err != nil || !fi.IsRegular() {
		t.Errorf("/usr/bin/less: %+v, %v", fi, err)
	}
}

// TestLayerCacheKeepsNoResolver: an image without /etc/resolv.conf gets
// one for the commands of a run with a package step (the one case that
// writes to the image), yet neither the cached step layers nor the output
// have it: it is taken away before every snapshot and put back for the
// next command. The re-run builds its output on the cached layers of the
// first three steps: had a layer kept the file, the output would have it.
func TestLayerCacheKeepsNoResolver(t *testing.T) {
	vmTests(t)
	repo := testAptRepo(t)
	in := testimages.Fresh(t, testimages.NoPart)
	cache, outs := t.TempDir(), t.TempDir()
	prep := writeRecipe(t, "steps:\n  - delete: /etc/resolv.conf\n")
	if r := imgbake(t, "run", "-a", in, prep); r.code != 0 {
		t.Fatalf("removing resolv.conf: %s", r)
	}
	recipe := func(last string) string {
		return writeRecipe(t, "steps:\n"+localAptStep(repo)+"  - install: [hello]\n  - run: cat /etc/resolv.conf > /root/seen\n  - write: {path: /root/last, content: "+last+"}\n")
	}
	for i, last := range []string{"one", "two"} {
		out := filepath.Join(outs, fmt.Sprintf("%d.qcow2", i))
		r := imgbake(t, "run", "--cache-dir", cache, "-a", in, "-o", out, recipe(last))
		if r.code != 0 {
			t.Fatalf("run %d: %s", i, r)
		}
		files, err := testimages.ReadFiles(t, out, "qcow2", 0, "/root/seen", "/etc/resolv.conf", "/etc/.resolv.conf.imgbake-saved", "/root/last")
		must(t, err)
		if string(files["/root/seen"]) != "nameserver 10.0.2.3\n" || string(files["/root/last"]) != last {
			t.Errorf("run %d: the command saw resolv.conf %q; /root/last %q", i, files["/root/seen"], files["/root/last"])
		}
		for _, p := range []string{"/etc/resolv.conf", "/etc/.resolv.conf.imgbake-saved"} {
			if _, ok := files[p]; ok {
				t.Errorf("run %d: %s is in the output", i, p)
			}
		}
		if i == 1 && !strings.Contains(r.stdout, "cached") {
			t.Errorf("the re-run used no cached layer:\n%s", r.stdout)
		}
	}
}
