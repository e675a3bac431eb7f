package fsops

import (
	"bytes"
	"context"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/imgbake/imgbake/appliance/passwd"
)

// The sysprep operations that are more than removing globs (see the table
// in sysprep.go).

var dhcpLeaseGlobs = []string{
	"/var/lib/dhclient/*",
	"/var/lib/dhcp/dhclient*", // Debian's isc-dhcp-client; dhcpd.leases there is a server's
	"/var/lib/NetworkManager/*.lease",
	"/var/lib/NetworkManager/*.leases",
	"/var/lib/dhcpcd/*.lease*",
	"/var/lib/dhcpcd5/*.lease*",
	"/var/db/dhcpcd/*.lease*",
	"/var/lib/wicked/lease-*",
}

var randomSeedFiles = []string{
	"/var/lib/systemd/random-seed",
	"/var/lib/urandom/random-seed",
	"/var/lib/random-seed",
}

var packageCacheDirs = []string{
	"/var/cache/apt",
	"/var/cache/dnf",
	"/var/cache/yum",
	"/var/cache/zypp",
	"/var/cache/pacman/pkg",
	"/var/cache/apk",
}

// packageListDirs hold what repositories sent; dnf and zypper keep theirs
// in the cache directories above.
var packageListDirs = []string{
	"/var/lib/apt/lists",
	"/var/lib/pacman/sync",
}

var otherHistories = []string{
	".ash_history", ".sh_history", ".ksh_history", ".history", ".local/share/fish/fish_history",
	".python_history", ".lesshst", ".mysql_history", ".psql_history", ".sqlite_history", ".node_repl_history",
}

// rotatedLog matches the names logrotate gives old logs: syslog.1,
// syslog.2.gz, messages-20240101, Xorg.0.log.old, anything compressed.
var rotatedLog = regexp.MustCompile(`(\.[0-9]+|-[0-9]{8}|\.old)(\.(gz|xz|bz2|zst|lz4))?$|\.(gz|xz|bz2|zst|lz4)$`)

func sysprepLogfiles(ctx context.Context, r *sysprepRun) error {
	// Journal files cannot be emptied (journald would set them aside as
	// corrupt), and their directory is named by the old machine ID.
	if err := r.removeGlob(ctx, "/var/log/journal/*"); err != nil {
		return err
	}
	return r.walk(ctx, "/var/log", func(m sysprepMatch) error {
		if !isRegular(m.StatResult) {
			return nil // sockets, links: not logs
		}
		if rotatedLog.MatchString(m.Name) || strings.HasSuffix(m.Name, ".journal") || strings.HasSuffix(m.Name, ".journal~") {
			return r.remove(ctx, m)
		}
		return r.truncate(ctx, m)
	})
}

func sysprepMachineID(ctx context.Context, r *sysprepRun) error {
	const p = "/etc/machine-id"
	if r.kept(p) {
		r.tally.kept++
		return nil
	}
	content, what := "", "emptied "+p
	if r.opts.MachineID == MachineIDUninitialized {
		content, what = "uninitialized\n", p+": uninitialized"
	}
	res, err := resetMachineID(ctx, r.s, content)
	if err != nil {
		return err
	}
	if res.Changed {
		r.tally.did("%s", what)
	}
	return nil
}

func sysprepDBusMachineID(ctx context.Context, r *sysprepRun) error {
	if r.kept(dbusMachineID) {
		r.tally.kept++
		return nil
	}
	res, err := removeDBusMachineID(ctx, r.s)
	if res.Changed {
		r.tally.removed++
		r.tally.changed = true
	}
	return err
}

// sshHostKeysScript makes the keys that ssh-hostkeys removed. Debian's sshd
// does not create missing keys, and the unit may have started (and given
// up, for want of keys) before this ran, so it is started again.
const sshHostKeysScript = `#!/bin/sh
# Installed by imgbake sysprep (ssh-hostkeys): this machine's own SSH host keys.
ssh-keygen -A
if command -v systemctl >/dev/null 2>&1; then
  for unit in ssh.service sshd.service; do
    if systemctl -q is-enabled "$unit" 2>/dev/null && ! systemctl -q is-active "$unit"; then
      systemctl reset-failed "$unit" 2>/dev/null
      systemctl --no-block start "$unit"
    fi
  done
fi
`

func sysprepSSHHostKeys(ctx context.Context, r *sysprepRun) error {
	if err := r.removeGlob(ctx, "/etc/ssh/*_host_*"); err != nil {
		return err
	}
	for _, prog := range []string{"sshd", "ssh-keygen"} {
		if p, err := hasProgram(ctx, r.s, prog); err != nil || p == "" {
			return err // no SSH server: nothing needs keys
		}
	}
	res, err := rearmFirstboot(ctx, r.s, "sysprep-ssh-hostkeys", []byte(sshHostKeysScript))
	r.dirs = map[string][]DirEntry{} // Firstboot wrote files the cache does not know
	if err != nil {
		return fmt.Errorf("installing key generation at first boot: %w", err)
	}
	if res.Changed {
		r.tally.did("new keys at first boot: %s", strings.TrimPrefix(res.Detail, "runs at first boot: "))
	}
	return nil
}

// rearmFirstboot installs script with Firstboot after taking an identical
// copy that already ran out of scripts-done: an image made from a machine
// that has booted needs the script to run again.
func rearmFirstboot(ctx context.Context, s Session, name string, script []byte) (Result, error) {
	var res Result
	done := FirstbootDir + "/scripts-done"
	ents, err := s.ReadDir(ctx, done)
	if err != nil && !isNotExist(err) {
		return res, err
	}
	for _, e := range ents {
		p := done + "/" + e.Name
		if !isRegular(e.StatResult) || e.Size != int64(len(script)) {
			continue
		}
		if b, _, err := readOptional(ctx, s, p); err != nil {
			return res, err
		} else if bytes.Equal(b, script) {
			r, err := Delete(ctx, s, p)
			if err != nil {
				return res, err
			}
			res.merge(r)
		}
	}
	r, err := Firstboot(ctx, s, name, script)
	res.merge(r)
	res.Detail = r.Detail
	return res, err
}

// historyOperation removes the named files (relative to a home) from every
// user's home directory.
func historyOperation(names ...string) func(context.Context, *sysprepRun) error {
	return func(ctx context.Context, r *sysprepRun) error {
		homes, err := r.userHomes(ctx)
		if err != nil {
			return err
		}
		for _, h := range homes {
			for _, n := range names {
				if err := r.removeGlob(ctx, path.Join(escapeGlob(h), n)); err != nil {
					return err
				}
			}
		}
		return nil
	}
}

// userHomes returns /root, every directory in /home and the home of every
// user in /etc/passwd with a login shell.
func (r *sysprepRun) userHomes(ctx context.Context) ([]string, error) {
	if r.homes != nil {
		return r.homes, nil
	}
	homes := []string{"/root"}
	ms, err := r.glob(ctx, "/home/*")
	if err != nil {
		return nil, err
	}
	for _, m := range ms {
		if isDir(m.StatResult) || isSymlink(m.StatResult) {
			homes = append(homes, m.path)
		}
	}
	data, _, err := readOptional(ctx, r.s, passwd.PasswdFile)
	if err != nil {
		return nil, err
	}
	users, _ := passwd.ParseUsers(data)
	for _, u := range users {
		shell := path.Base(u.Shell)
		if !strings.HasPrefix(u.Home, "/") || shell == "nologin" || shell == "false" {
			continue
		}
		homes = append(homes, path.Clean(u.Home))
	}
	slices.Sort(homes)
	r.homes = slices.Compact(homes)
	return r.homes, nil
}

// escapeGlob quotes the characters path.Match treats specially.
func escapeGlob(s string) string {
	var b strings.Builder
	for _, c := range s {
		if strings.ContainsRune(`*?[\`, c) {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func sysprepCloudInit(ctx context.Context, r *sysprepRun) error {
	ms, err := r.glob(ctx, "/var/lib/cloud/*")
	if err != nil {
		return err
	}
	for _, m := range ms {
		if m.Name == "seed" {
			continue // the datasource baked into the image, as cloud-init clean keeps it
		}
		if err := r.remove(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

// atSequenceFiles hold at's job counter; virt-sysprep resets them too.
var atSequenceFiles = []string{"/var/spool/cron/atjobs/.SEQ", "/var/spool/atjobs/.SEQ", "/var/spool/at/.SEQ"}

func sysprepCronSpool(ctx context.Context, r *sysprepRun) error {
	for _, d := range []string{"/var/spool/cron", "/var/spool/at"} {
		err := r.walk(ctx, d, func(m sysprepMatch) error {
			if m.Name == ".SEQ" {
				return nil
			}
			return r.remove(ctx, m)
		})
		if err != nil {
			return err
		}
	}
	for _, p := range []string{"/var/spool/atjobs/*", "/var/spool/atspool/*"} {
		ms, err := r.glob(ctx, p)
		if err != nil {
			return err
		}
		for _, m := range ms {
			if m.Name != ".SEQ" {
				if err := r.remove(ctx, m); err != nil {
					return err
				}
			}
		}
	}
	for _, p := range atSequenceFiles {
		err := r.edit(ctx, p, func([]byte) ([]byte, error) { return []byte("00000\n"), nil })
		if err != nil {
			return err
		}
	}
	return nil
}

func sysprepEtcHosts(ctx context.Context, r *sysprepRun) error {
	b, _, err := readOptional(ctx, r.s, "/etc/hostname")
	if err != nil {
		return err
	}
	name := ""
	for line := range strings.Lines(string(b)) {
		if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") {
			name = l
			break
		}
	}
	if name == "" {
		return nil
	}
	return r.edit(ctx, "/etc/hosts", func(data []byte) ([]byte, error) {
		return []byte(dropHostname(string(data), name)), nil
	})
}

// dropHostname removes from an /etc/hosts text the names that are the
// hostname or start with its first label and a dot (web01,
// web01.example.com); a line left without names goes. localhost names
// stay, and untouched lines keep their spelling.
func dropHostname(hosts, hostname string) string {
	short, _, _ := strings.Cut(strings.ToLower(hostname), ".")
	if short == "" || strings.HasPrefix(short, "localhost") {
		return hosts
	}
	var out strings.Builder
	for line := range strings.Lines(hosts) {
		body, comment, hasComment := strings.Cut(strings.TrimRight(line, "\r\n"), "#")
		f := strings.Fields(body)
		if len(f) < 2 {
			out.WriteString(line)
			continue
		}
		names := slices.DeleteFunc(slices.Clone(f[1:]), func(n string) bool {
			n = strings.ToLower(n)
			return n == short || strings.HasPrefix(n, short+".")
		})
		switch {
		case len(names) == len(f)-1:
			out.WriteString(line)
		case len(names) > 0:
			out.WriteString(f[0] + "\t" + strings.Join(names, " "))
			if hasComment {
				out.WriteString(" #" + comment)
			}
			out.WriteString("\n")
		}
	}
	return out.String()
}

func sysprepNetHWAddr(ctx context.Context, r *sysprepRun) error {
	edits := []struct {
		glob string
		fn   func([]byte) ([]byte, error)
	}{
		{"/etc/sysconfig/network-scripts/ifcfg-*", func(b []byte) ([]byte, error) { return dropKeyLines(b, "HWADDR"), nil }},
		{"/etc/NetworkManager/system-connections/*", func(b []byte) ([]byte, error) { return dropKeyLines(b, "mac-address"), nil }},
		{"/etc/netplan/*.yaml", nil},
	}
	for _, e := range edits {
		ms, err := r.glob(ctx, e.glob)
		if err != nil {
			return err
		}
		for _, m := range ms {
			if !isRegular(m.StatResult) {
				continue
			}
			fn := e.fn
			if fn == nil {
				fn = func(b []byte) ([]byte, error) {
					out, left, err := unpinNetplan(b)
					for _, l := range left {
						r.tally.leave("%s: %s", m.path, l)
					}
					return out, err
				}
			}
			if err := r.edit(ctx, m.path, fn); err != nil {
				return err
			}
		}
	}
	return nil
}

// dropKeyLines removes the KEY=... lines (spaces allowed around the key)
// of an ifcfg or NetworkManager keyfile.
func dropKeyLines(data []byte, key string) []byte {
	var out bytes.Buffer
	for line := range strings.Lines(string(data)) {
		k, _, ok := strings.Cut(line, "=")
		if ok && strings.TrimSpace(k) == key {
			continue
		}
		out.WriteString(line)
	}
	return out.Bytes()
}

// unpinNetplan removes match: macaddress from the ethernets and wifis of a
// netplan file. A match left empty goes, and with it a set-name equal to
// the device's id (cloud-init's spelling): without a match, netplan takes
// the id as the interface name. A set-name to another name needs a match,
// so such a device stays as it is and is reported in left. An unparsable
// file is left alone (netplan rejects it anyway).
func unpinNetplan(data []byte) (out []byte, left []string, err error) {
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 {
		return data, nil, nil
	}
	changed := false
	network := mapValue(doc.Content[0], "network")
	for _, kind := range []string{"ethernets", "wifis"} {
		devs := mapValue(network, kind)
		if devs == nil || devs.Kind != yaml.MappingNode {
			continue
		}
		for i := 0; i+1 < len(devs.Content); i += 2 {
			id, dev := devs.Content[i].Value, devs.Content[i+1]
			match := mapValue(dev, "match")
			if match == nil || mapValue(match, "macaddress") == nil {
				continue
			}
			if len(match.Content) > 2 {
				mapDelete(match, "macaddress")
				changed = true
				continue
			}
			if setName := mapValue(dev, "set-name"); setName != nil {
				if setName.Value != id {
					left = append(left, fmt.Sprintf("%s.%s matches only by MAC and renames it to %s: left as it is", kind, id, setName.Value))
					continue
				}
				mapDelete(dev, "set-name")
			}
			mapDelete(dev, "match")
			changed = true
		}
	}
	if !changed {
		return data, left, nil
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	if err := enc.Encode(&doc); err != nil {
		return nil, left, err
	}
	if err := enc.Close(); err != nil {
		return nil, left, err
	}
	return b.Bytes(), left, nil
}

// mapValue returns the value under key of a YAML mapping, or nil.
func mapValue(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func mapDelete(m *yaml.Node, key string) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content = slices.Delete(m.Content, i, i+2)
			return
		}
	}
}
