package testimages

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/imgbake/imgbake/internal/vmtest"
)

// TestLUKSImages checks the LUKS test images with the host's cryptsetup:
// the header in partition 2 is the version and UUID the sidecar says, the
// passphrase opens it (--test-passphrase needs no device-mapper), the
// volume key cryptsetup recovers is the sidecar's, and the payload
// decrypted with it holds the root whose fstab and crypttab name the
// volume as Debian does.
func TestLUKSImages(t *testing.T) {
	vmTests(t)
	vmtest.LookPath(t, "cryptsetup", "cryptsetup-bin")
	for _, name := range []string{LUKS2, LUKS1, LUKSLVM} {
		t.Run(name, func(t *testing.T) {
			info := InfoOf(t, name)
			p := Path(t, name)
			start := PartitionOffset(t, p, info.LUKSPartition)
			hdr := filepath.Join(t.TempDir(), "header")
			// The header and keyslots, up to the payload.
			cmd := exec.Command("dd", "if="+p, "of="+hdr, "bs=1M", "iflag=skip_bytes,count_bytes",
				"skip="+itoa(start), "count="+itoa(info.PayloadOffset-start), "status=none")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("dd: %v\n%s", err, out)
			}
			pw := filepath.Join(t.TempDir(), "pw")
			if err := os.WriteFile(pw, []byte(info.Passphrase), 0o600); err != nil {
				t.Fatal(err)
			}
			dump, err := exec.Command("cryptsetup", "luksDump", "-q", "--dump-volume-key", "--key-file", pw, hdr).CombinedOutput()
			if err != nil {
				t.Fatalf("cryptsetup luksDump: %v\n%s", err, dump)
			}
			m := regexp.MustCompile(`(?s)MK dump:\s*((?:[0-9a-f]{2}\s+)+)`).FindSubmatch(dump)
			if m == nil || strings.Join(strings.Fields(string(m[1])), "") != info.VolumeKey {
				t.Errorf("volume key from cryptsetup differs from the sidecar's:\n%s", dump)
			}
			plainDump, err := exec.Command("cryptsetup", "luksDump", hdr).CombinedOutput()
			if err != nil {
				t.Fatalf("cryptsetup luksDump: %v\n%s", err, plainDump)
			}
			if !regexp.MustCompile(`(?m)^Version:\s+`+itoa(int64(info.LUKSVersion))+`$`).Match(plainDump) ||
				!regexp.MustCompile(`(?m)^UUID:\s+`+info.LUKSUUID+`$`).Match(plainDump) {
				t.Errorf("luksDump does not show version %d, UUID %s:\n%s", info.LUKSVersion, info.LUKSUUID, plainDump)
			}
			if out, err := exec.Command("cryptsetup", "open", "--test-passphrase", "--key-file", pw, hdr).CombinedOutput(); err != nil {
				t.Errorf("the passphrase does not open the volume: %v\n%s", err, out)
			}
			plain := DecryptPayload(t, p, info)
			files := map[string]string{}
			for _, f := range []string{"/etc/os-release", "/etc/fstab", "/etc/crypttab", "/etc/hostname"} {
				b, err := ReadFileAt(t, plain, info.RootOffset, f)
				if err != nil {
					t.Fatalf("%s in the decrypted root: %v", f, err)
				}
				files[f] = string(b)
			}
			if !strings.Contains(files["/etc/os-release"], "VERSION_ID=\"12\"") || files["/etc/hostname"] != info.Hostname+"\n" {
				t.Errorf("decrypted root: os-release %q, hostname %q", files["/etc/os-release"], files["/etc/hostname"])
			}
			if !strings.Contains(files["/etc/crypttab"], info.CrypttabName+"\tUUID="+info.LUKSUUID+"\tnone\tluks") {
				t.Errorf("crypttab %q", files["/etc/crypttab"])
			}
			wantRoot := "/dev/mapper/" + info.CrypttabName + "\t/\t"
			if info.VG != "" {
				wantRoot = "UUID=" + info.RootUUID + "\t/\t"
			}
			if !strings.Contains(files["/etc/fstab"], wantRoot) {
				t.Errorf("fstab lacks %q:\n%s", wantRoot, files["/etc/fstab"])
			}
			if info.HomeVolumeKey == "" {
				return
			}
			// LVM on LUKS holding LUKS again: LV home.
			home := DecryptPayload(t, plain, info.HomeVolume())
			if b, err := ReadFileAt(t, home, 0, "/marker"); err != nil || !strings.Contains(string(b), "/home in LUKS LV") {
				t.Errorf("/marker in the decrypted LV home: %q, %v", b, err)
			}
			if !strings.Contains(files["/etc/crypttab"], "home_crypt\t/dev/vgcrypt/home\tnone\tluks") ||
				!strings.Contains(files["/etc/fstab"], "/dev/mapper/home_crypt\t/home\t") {
				t.Errorf("crypttab or fstab lacks home_crypt:\n%s\n%s", files["/etc/crypttab"], files["/etc/fstab"])
			}
		})
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
