package bake

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
