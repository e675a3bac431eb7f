package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/imgbake/imgbake/testimages"
)

// luksRecipe writes, runs a command with the image's own tools and adds a
// user on a root behind LUKS.
const luksRecipe = `name: luks
steps:
  - write: {path: /root/facts, content: "{{ .os.id }} {{ .os.version_id }} {{ .os.family }}\n"}
  - run: "ls /usr/bin/dpkg > /root/ran && uname -m >> /root/ran"
  - user: {name: ops, shell: /bin/bash}
  - write: {path: /home/written, content: "on /home\n"}
`

// TestLUKSVM: LUKS2, LUKS1 and LVM-on-LUKS roots. Without a key inspect
// fails with exit 3 naming the volume, its UUID and the --key flags, and
// writes nothing; a wrong key is named wrong; with --key (every selector
// form) inspect finds the OS behind it, cat and fsck work, and a recipe's
// result is read back by decrypting the image's payload with the volume
// key cryptsetup reported at build time (testimages.DecryptPayload, no
// imgbake code) and debugfs. The passphrase is in no process's command
// line or environment during the run, not in the output and not in the
// image (ciphertext or plaintext). On LVM-on-LUKS, LV home is LUKS again
// (crypttab home_crypt /dev/vgcrypt/home): opened with a second --key
// naming it /dev/vgcrypt/home, locked (a warning, /home not mounted)
// without.
func TestLUKSVM(t *testing.T) {
	vmTests(t)
	for _, tc := range []struct {
		image, root, selector string
	}{
		{testimages.LUKS2, "", "all"},
		{testimages.LUKS1, "", "/dev/sda2"}, // the original machine's name, as virt-customize users write it
		{testimages.LUKSLVM, "/dev/mapper/vgcrypt-root", "UUID"},
	} {
		t.Run(strings.TrimSuffix(tc.image, ".raw"), func(t *testing.T) {
			tmp := privateTmp(t)
			info := testimages.InfoOf(t, tc.image)
			disk := testimages.Fresh(t, tc.image)
			mapped := "/dev/mapper/" + info.Mapper
			root := tc.root
			if root == "" {
				root = mapped
			}
			sel := tc.selector
			if sel == "UUID" {
				sel = info.LUKSUUID
			}
			pwFile := filepath.Join(t.TempDir(), "passphrase")
			if err := os.WriteFile(pwFile, []byte(info.Passphrase+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			key := sel + ":file:" + pwFile
			keys := []string{"--key", key}
			wantMounts := map[string]string{"/": root, "/boot": "/dev/vda1"}
			homeMapped := ""
			if info.HomeLUKSUUID != "" {
				homeMapped = "/dev/mapper/luks-" + info.HomeLUKSUUID
				keys = append(keys, "--key", "/dev/vgcrypt/home:file:"+pwFile)
				wantMounts["/home"] = homeMapped
			}
			before := sha256File(t, disk)

			r := imgbake(t, "inspect", "-a", disk)
			wantCode(t, r, 3, "inspect without a key")
			for _, want := range []string{"/dev/vda2", info.LUKSUUID, "--key /dev/vda2:key:", "--key " + info.LUKSUUID + ":file:", "no key given"} {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("inspect without a key: message lacks %q:\n%s", want, r.stderr)
				}
			}
			r = imgbake(t, "inspect", "-a", disk, "--key", sel+":key:not the passphrase")
			wantCode(t, r, 3, "inspect with a wrong key")
			wantMatch(t, r.stderr, `/dev/vda2: LUKS\d volume `+info.LUKSUUID+`: the key given for it \(--key `+sel+`:\.\.\.\) is wrong`, "wrong key")
			if sha256File(t, disk) != before {
				t.Fatal("inspect changed the image")
			}

			if homeMapped != "" {
				rep := inspectJSON(t, "-a", disk, "--key", key)
				if rep.OS.Root != root || rep.Mountpoints["/home"] != "" || len(rep.LUKS) != 2 || rep.LUKS[1].Mapping != "" ||
					!slices.ContainsFunc(rep.Warnings, func(w string) bool {
						return strings.Contains(w, "LUKS volume /dev/mapper/vgcrypt-home ("+info.HomeLUKSUUID+") is locked")
					}) {
					t.Errorf("without the key of LV home: root %s, mountpoints %v, luks %+v, warnings %q", rep.OS.Root, rep.Mountpoints, rep.LUKS, rep.Warnings)
				}
			}

			rep := inspectJSON(t, append([]string{"-a", disk}, keys...)...)
			if rep.OS.ID != "debian" || rep.OS.VersionID != "12" || rep.OS.Root != root || rep.Hostname != info.Hostname {
				t.Errorf("os %+v, hostname %q", rep.OS, rep.Hostname)
			}
			if !jsonEqual(rep.Mountpoints, wantMounts) || len(rep.Warnings) > 0 {
				t.Errorf("mountpoints %v, want %v; warnings %q", rep.Mountpoints, wantMounts, rep.Warnings)
			}
			if len(rep.LUKS) == 0 || rep.LUKS[0].Device != "/dev/vda2" || rep.LUKS[0].UUID != info.LUKSUUID ||
				rep.LUKS[0].Version != info.LUKSVersion || rep.LUKS[0].Mapping != mapped || rep.LUKS[0].Problem != "" {
				t.Errorf("luks %+v", rep.LUKS)
			}
			if homeMapped != "" && (len(rep.LUKS) != 2 || rep.LUKS[1].Device != "/dev/mapper/vgcrypt-home" || rep.LUKS[1].Version != 1 ||
				rep.LUKS[1].UUID != info.HomeLUKSUUID || rep.LUKS[1].Mapping != homeMapped) {
				t.Errorf("LV home: luks %+v", rep.LUKS)
			}
			r = imgbake(t, append([]string{"cat", "-a", disk, "/etc/hostname", "/boot/README"}, keys...)...)
			wantCode(t, r, 0, "cat")
			if want := "testhost\nimgbake test image " + tc.image + ": /boot\n"; r.stdout != want {
				t.Errorf("cat: %q, want %q", r.stdout, want)
			}

			stop := watchProcesses(t, info.Passphrase)
			r = imgbake(t, append([]string{"run", "-v", "-a", disk, writeRecipe(t, luksRecipe)}, keys...)...)
			stop()
			wantCode(t, r, 0, "run")
			if strings.Contains(r.stdout+r.stderr, info.Passphrase) {
				t.Errorf("the passphrase is in the output of run -v:\n%s", r)
			}
			plain := testimages.DecryptPayload(t, disk, info)
			files := map[string]string{}
			for _, p := range []string{"/root/facts", "/root/ran", "/etc/passwd", "/etc/crypttab"} {
				b, err := testimages.ReadFileAt(t, plain, info.RootOffset, p)
				if err != nil {
					t.Fatalf("reading %s back: %v", p, err)
				}
				files[p] = string(b)
			}
			if files["/root/facts"] != "debian 12 debian\n" || files["/root/ran"] != "/usr/bin/dpkg\nx86_64\n" || !strings.Contains(files["/etc/passwd"], "\nops:x:") {
				t.Errorf("read back: facts %q, ran %q, passwd:\n%s", files["/root/facts"], files["/root/ran"], files["/etc/passwd"])
			}
			if !strings.Contains(files["/etc/crypttab"], info.CrypttabName+"\tUUID="+info.LUKSUUID) {
				t.Errorf("crypttab changed: %q", files["/etc/crypttab"])
			}
			homeFS, homeOff := plain, info.RootOffset
			if homeMapped != "" {
				homeFS, homeOff = testimages.DecryptPayload(t, plain, info.HomeVolume()), 0
			}
			written := "/home/written"
			if homeMapped != "" {
				written = "/written" // the root of LV home's filesystem
			}
			if b, err := testimages.ReadFileAt(t, homeFS, homeOff, written); err != nil || string(b) != "on /home\n" {
				t.Errorf("/home/written read back: %q, %v", b, err)
			}
			for _, f := range []string{disk, plain, homeFS} {
				if fileContains(t, f, []byte(info.Passphrase)) {
					t.Errorf("the passphrase is written in %s", f)
				}
			}

			fsckArgs := []string{"fsck", "-a", disk, root}
			if homeMapped != "" {
				fsckArgs = append(fsckArgs, homeMapped)
			}
			r = imgbake(t, append(fsckArgs, keys...)...)
			wantCode(t, r, 0, "fsck behind LUKS")
			for _, dev := range fsckArgs[3:] {
				wantMatch(t, r.stdout, `(?m)^-> `+dev+`: clean`, "fsck")
			}
			noLeftovers(t, tmp)
		})
	}
}

// watchProcesses looks at every process's command line and environment
// until stop is called, failing the test if one holds secret.
func watchProcesses(t *testing.T, secret string) (stop func()) {
	t.Helper()
	done := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var found []string
	seen := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			procs, _ := filepath.Glob("/proc/[0-9]*")
			for _, p := range procs {
				for _, f := range []string{"cmdline", "environ"} {
					b, err := os.ReadFile(filepath.Join(p, f))
					if err != nil {
						continue
					}
					mu.Lock()
					seen++
					if bytes.Contains(b, []byte(secret)) {
						found = append(found, p+"/"+f)
					}
					mu.Unlock()
				}
			}
			select {
			case <-done:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
		if len(found) > 0 {
			t.Errorf("the passphrase is in %s", strings.Join(found, ", "))
		}
		if seen == 0 {
			t.Error("no process could be examined")
		}
	}
}

// fileContains reports whether the (sparse) file holds b.
func fileContains(t *testing.T, path string, b []byte) bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 8<<20)
	var carry []byte
	for {
		n, err := f.Read(buf)
		chunk := append(carry, buf[:n]...)
		if bytes.Contains(chunk, b) {
			return true
		}
		if len(chunk) >= len(b) {
			carry = append([]byte(nil), chunk[len(chunk)-len(b)+1:]...)
		}
		if err != nil {
			return false
		}
	}
}

// TestLUKSKeyPromptVM: with stdin a terminal and no --key, imgbake asks
// for the passphrase of the locked volume (no echo) and opens it.
func TestLUKSKeyPromptVM(t *testing.T) {
	vmTests(t)
	tmp := privateTmp(t)
	info := testimages.InfoOf(t, testimages.LUKS2)
	disk := testimages.Fresh(t, testimages.LUKS2)
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	defer tty.Close()
	prompt := "Enter the passphrase of LUKS volume /dev/vda2 (" + info.LUKSUUID + "), empty to skip: "
	var mu sync.Mutex
	var seen bytes.Buffer
	answered := make(chan struct{})
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := ptmx.Read(buf)
			mu.Lock()
			seen.Write(buf[:n])
			ask := strings.Contains(seen.String(), prompt)
			mu.Unlock()
			if ask {
				select {
				case <-answered:
				default:
					close(answered)
					_, _ = ptmx.Write([]byte(info.Passphrase + "\n"))
				}
			}
			if err != nil {
				return
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out bytes.Buffer
	code := Execute(ctx, Stdio{In: tty, Out: &out, Err: tty}, []string{"imgbake", "inspect", "--json", "-a", disk})
	mu.Lock()
	term := seen.String()
	mu.Unlock()
	if code != 0 {
		t.Fatalf("inspect with a prompted key: exit %d\nterminal:\n%s\nstdout:\n%s", code, term, out.String())
	}
	select {
	case <-answered:
	default:
		t.Fatalf("no passphrase prompt on the terminal:\n%s", term)
	}
	if strings.Contains(term, info.Passphrase) {
		t.Errorf("the passphrase was echoed:\n%s", term)
	}
	if !strings.Contains(out.String(), `"root": "/dev/mapper/`+info.Mapper+`"`) {
		t.Errorf("inspect --json does not show the root behind LUKS:\n%s", out.String())
	}
	noLeftovers(t, tmp)
}
