package fsops

import "testing"

func TestDropHostname(t *testing.T) {
	const debian = "127.0.0.1\tlocalhost\n127.0.1.1\tweb01.example.com web01\n\n# The following lines are desirable for IPv6\n::1     localhost ip6-localhost ip6-loopback\n"
	cases := []struct {
		name, hosts, hostname, want string
	}{
		{"Debian's 127.0.1.1 line goes", debian, "web01",
			"127.0.0.1\tlocalhost\n\n# The following lines are desirable for IPv6\n::1     localhost ip6-localhost ip6-loopback\n"},
		{"an FQDN hostname: its short name goes too", "127.0.1.1 web01.example.com web01\n", "web01.example.com", ""},
		{"other names on the line stay", "127.0.0.1 localhost web01 # added\n", "web01", "127.0.0.1\tlocalhost # added\n"},
		{"similar names stay", "10.0.0.5 web01-backup web011 db.web01\n", "web01", "10.0.0.5 web01-backup web011 db.web01\n"},
		{"case does not matter", "127.0.1.1 WEB01\n", "web01", ""},
		{"comments are not entries", "# 127.0.1.1 web01\n", "web01", "# 127.0.1.1 web01\n"},
		{"localhost is never removed", "127.0.0.1 localhost\n", "localhost", "127.0.0.1 localhost\n"},
		{"no trailing newline", "127.0.0.1 localhost\n127.0.1.1 web01", "web01", "127.0.0.1 localhost\n"},
	}
	for _, c := range cases {
		got := dropHostname(c.hosts, c.hostname)
		if got != c.want {
			t.Errorf("%s:\n got %q\nwant %q", c.name, got, c.want)
		}
		if again := dropHostname(got, c.hostname); again != got {
			t.Errorf("%s: not idempotent: %q", c.name, again)
		}
	}
}

func TestUnpinNetplan(t *testing.T) {
	cases := []struct {
		name, in, want string
		left           int
	}{
		{"cloud-init's spelling: match and set-name go",
			"network:\n    ethernets:\n        ens3:\n            dhcp4: true\n            match:\n                macaddress: 52:54:00:12:34:56\n            set-name: ens3\n    version: 2\n",
			"network:\n    ethernets:\n        ens3:\n            dhcp4: true\n    version: 2\n", 0},
		{"other match keys stay",
			"network:\n  ethernets:\n    lan:\n      match:\n        macaddress: 52:54:00:12:34:56\n        driver: virtio_net\n      set-name: lan0\n",
			"network:\n    ethernets:\n        lan:\n            match:\n                driver: virtio_net\n            set-name: lan0\n", 0},
		{"a rename that needs the MAC is left and reported",
			"network:\n  ethernets:\n    lan:\n      match: {macaddress: \"52:54:00:12:34:56\"}\n      set-name: lan0\n",
			"network:\n  ethernets:\n    lan:\n      match: {macaddress: \"52:54:00:12:34:56\"}\n      set-name: lan0\n", 1},
		{"wifis too; comments stay",
			"# managed\nnetwork:\n  wifis:\n    wlan0:\n      match:\n        macaddress: 52:54:00:12:34:56\n",
			"# managed\nnetwork:\n    wifis:\n        wlan0: {}\n", 0},
		{"nothing pinned: unchanged bytes",
			"network:\n  ethernets:\n    eth0: {dhcp4: true}\n", "network:\n  ethernets:\n    eth0: {dhcp4: true}\n", 0},
		{"not YAML: left alone", "network: [\n", "network: [\n", 0},
	}
	for _, c := range cases {
		out, left, err := unpinNetplan([]byte(c.in))
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if string(out) != c.want || len(left) != c.left {
			t.Errorf("%s:\n got %q (left %q)\nwant %q (%d left)", c.name, out, left, c.want, c.left)
		}
		if again, _, _ := unpinNetplan(out); string(again) != string(out) {
			t.Errorf("%s: not idempotent: %q", c.name, again)
		}
	}
}

func TestDropKeyLines(t *testing.T) {
	in := "[connection]\nid=Wired\n[ethernet]\nmac-address=52:54:00:12:34:56\n mac-address = 52:54:00:12:34:57\ncloned-mac-address=random\nmac-address-denylist=\n"
	want := "[connection]\nid=Wired\n[ethernet]\ncloned-mac-address=random\nmac-address-denylist=\n"
	if got := string(dropKeyLines([]byte(in), "mac-address")); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestRotatedLog(t *testing.T) {
	for name, rotated := range map[string]bool{
		"syslog": false, "syslog.1": true, "syslog.2.gz": true, "messages-20240101": true, "messages-20240101.xz": true,
		"Xorg.0.log": false, "Xorg.0.log.old": true, "dpkg.log": false, "dpkg.log.1": true, "eipp.log.xz": true,
		"php8.2-fpm.log": false, "wtmp": false, "lastlog": false,
	} {
		if got := rotatedLog.MatchString(name); got != rotated {
			t.Errorf("%s: rotated = %v, want %v", name, got, rotated)
		}
	}
}
