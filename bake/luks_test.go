package bake

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/imgbake/imgbake/appliance/luks"
	"github.com/imgbake/imgbake/appliance/proto"
)

func TestParseKey(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "pw")
	if err := os.WriteFile(file, []byte("from file:with colon\nsecond line\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		spec, sel, pass string
	}{
		{"all:key:s3cret", "all", "s3cret"},
		{"/dev/sda3:key:a:b:c", "/dev/sda3", "a:b:c"},
		{"01234567-89ab-cdef-0123-456789abcdef:key:pw", "01234567-89ab-cdef-0123-456789abcdef", "pw"},
		{"all:file:" + file, "all", "from file:with colon"},
	} {
		k, err := ParseKey(tc.spec)
		if err != nil || k.Selector != tc.sel || string(k.Passphrase) != tc.pass {
			t.Errorf("ParseKey(%q) = %q %q, %v", tc.spec, k.Selector, k.Passphrase, err)
		}
		if s := fmt.Sprint(k); strings.Contains(s, tc.pass) {
			t.Errorf("%q prints its passphrase: %s", tc.spec, s)
		}
	}
	for spec, want := range map[string]string{
		"all:clevis":               "not supported",
		"/dev/sda3":                "SELECTOR:key:PASSPHRASE",
		":key:x":                   "SELECTOR:key:PASSPHRASE",
		"all:token:x":              "unknown key type",
		"all:file:" + dir + "/nix": "no such file",
	} {
		_, err := ParseKey(spec)
		if err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, ErrUsage) {
			t.Errorf("ParseKey(%q) = %v, want a usage error with %q", spec, err, want)
		}
	}
}

func TestKeySelects(t *testing.T) {
	const uuid = "66666666-7777-8888-9999-aaaaaaaaaaaa"
	part := proto.Filesystem{Device: "/dev/vda3", Type: proto.TypeLUKS, UUID: uuid, PartUUID: "5ea1b0d0-0000-4000-8000-000000000073"}
	lv := proto.Filesystem{Device: "/dev/mapper/vg0-home", Type: proto.TypeLUKS, UUID: uuid, VG: "vg0", LV: "home"}
	for _, tc := range []struct {
		sel  string
		fs   proto.Filesystem
		want bool
	}{
		{"all", part, true},
		{uuid, part, true},
		{"UUID=66666666-7777-8888-9999-AAAAAAAAAAAA", part, true},
		{"/dev/sda3", part, true}, // the original machine's name
		{"/dev/xvda3", part, true},
		{"/dev/vda3", part, true},
		{"/dev/disk/by-uuid/" + uuid, part, true},
		{"/dev/disk/by-partuuid/5EA1B0D0-0000-4000-8000-000000000073", part, true},
		{"/dev/vda2", part, false},
		{"/dev/sda", part, false},
		{"11111111-2222-3333-4444-555555555555", part, false},
		{"/dev/disk/by-uuid/11111111-2222-3333-4444-555555555555", part, false},
		{"/dev/vg0/home", lv, true},
		{"/dev/mapper/vg0-home", lv, true},
		{"/dev/disk/by-id/dm-name-vg0-home", lv, true},
		{"/dev/vg0/root", lv, false},
		{"/dev/vda3", lv, false},
	} {
		if got := keySelects(tc.sel, tc.fs, uuid); got != tc.want {
			t.Errorf("keySelects(%q, %s) = %v", tc.sel, tc.fs.Device, got)
		}
	}
}

// The host recovers the volume key from what the agent sends (the header
// material), says in -v output which slot opened and how long it took,
// and logs neither the passphrase nor the key.
func TestUnlockerFromMaterial(t *testing.T) {
	if _, err := exec.LookPath("cryptsetup"); err != nil {
		t.Skip("cryptsetup not installed (apt-get install cryptsetup-bin)")
	}
	dir := t.TempDir()
	img, pw := filepath.Join(dir, "vol"), filepath.Join(dir, "pw")
	const pass = "host side passphrase"
	if err := os.WriteFile(pw, []byte(pass), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(img, make([]byte, 2<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("cryptsetup", "luksFormat", "-q", "--type", "luks2", "--pbkdf", "argon2id", "--pbkdf-memory", "65536",
		"--pbkdf-force-iterations", "4", "--luks2-metadata-size", "16k", "--luks2-keyslots-size", "512k", "--key-file", pw, img).CombinedOutput()
	if err != nil {
		t.Fatalf("luksFormat: %v\n%s", err, out)
	}
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, err := luks.Read(f)
	if err != nil {
		t.Fatal(err)
	}
	material, ext, err := h.MaterialReader(f)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(material)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := luks.NewSparse(ext, data)
	if err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	u := &unlocker{device: "/dev/vda2", sp: sp, logf: func(f string, a ...any) { fmt.Fprintf(&log, f+"\n", a...) }}
	if u.h, err = luks.Read(sp); err != nil {
		t.Fatal(err)
	}
	if _, err := u.try(context.Background(), []byte("wrong"), "--key all:..."); !errors.Is(err, luks.ErrWrongKey) {
		t.Errorf("wrong passphrase: %v", err)
	}
	key, err := u.try(context.Background(), []byte(pass), "--key all:...")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.CheckKey(key); err != nil {
		t.Errorf("the key recovered from the material: %v", err)
	}
	wantMatch := regexp.MustCompile(`LUKS volume /dev/vda2 \(` + h.UUID + `\): key slot 0 \(argon2id, 64 MiB, 4 iterations, \d+ threads\) opened with --key all:\.\.\. on the host in \d`)
	if !wantMatch.MatchString(log.String()) || !strings.Contains(log.String(), "opens no key slot") {
		t.Errorf("log:\n%s", log.String())
	}
	for _, secret := range []string{pass, hex.EncodeToString(key), base64.StdEncoding.EncodeToString(key)} {
		if strings.Contains(log.String(), secret) {
			t.Errorf("the log holds a secret:\n%s", log.String())
		}
	}
	// A cancelled unlock returns at once.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := u.try(ctx, []byte(pass), "x"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	if u.h.CheckKey(key) != nil {
		t.Error("the header changed")
	}
	if s := fmt.Sprint(proto.LUKSVolumeKey{Device: "/dev/vda2", UUID: h.UUID, Key: key}); strings.Contains(s, hex.EncodeToString(key[:4])) || strings.Contains(s, string(key)) {
		t.Errorf("a volume key prints its key: %s", s)
	}
}
