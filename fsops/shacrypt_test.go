package fsops

import (
	execpkg "os/exec"
	"strings"
	"testing"

	"github.com/imgbake/imgbake/internal/vmtest"
)

// Test vectors from Ulrich Drepper's SHA-crypt specification.
func TestShaCryptVectors(t *testing.T) {
	tests := []struct{ setting, password, want string }{
		{"$5$saltstring", "Hello world!", "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5"},
		{"$5$rounds=10000$saltstringsaltstring", "Hello world!", "$5$rounds=10000$saltstringsaltst$3xv.VbSHBb41AL9AvLeujZkZRBAwqFMz2.opqey6IcA"},
		{"$5$rounds=1400$anotherlongsaltstring", "a very much longer text to encrypt.  This one even stretches over morethan one line.", "$5$rounds=1400$anotherlongsalts$Rx.j8H.h8HjEDGomFU8bDkXm3XIUnzyxf12oP84Bnq1"},
		{"$5$rounds=10$roundstoolow", "the minimum number is still observed", "$5$rounds=1000$roundstoolow$yfvwcWrQ8l/K0DAWyuPMDNHpIVlTQebY9l/gL972bIC"},
		{"$6$saltstring", "Hello world!", "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"},
		{"$6$rounds=10000$saltstringsaltstring", "Hello world!", "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v."},
		{"$6$rounds=5000$toolongsaltstring", "This is just a test", "$6$rounds=5000$toolongsaltstrin$lQ8jolhgVRVhY4b5pZKaysCLi0QBxGoNeKQzQ3glMhwllF7oGDZxUhx1yxdYcz/e1JSbq3y6JMxxl8audkUEm0"},
		{"$6$rounds=10$roundstoolow", "the minimum number is still observed", "$6$rounds=1000$roundstoolow$kUMsbe306n21p9R.FRkW3IGn.S9NPN0x50YhH1xhLsPuWGsUSklZt58jaTfF4ZEQpyUNGc0dqbpBYYBaHHrsX."},
	}
	for _, tt := range tests {
		got, ok := shaCrypt(tt.password, tt.setting)
		if !ok || got != tt.want {
			t.Errorf("shaCrypt(%q, %q) = %q, %v; want %q", tt.password, tt.setting, got, ok, tt.want)
		}
		if m, known := shaCryptMatches(tt.password, tt.want); !m || !known {
			t.Errorf("shaCryptMatches(%q, %q) = %v, %v", tt.password, tt.want, m, known)
		}
		if m, _ := shaCryptMatches(tt.password+"x", tt.want); m {
			t.Errorf("a wrong password matches %q", tt.want)
		}
	}
	for _, h := range []string{"$y$j9T$abc$def", "!", "*", "", "$1$abc$def", "$6$rounds=x$abc$def"} {
		if _, known := shaCryptMatches("x", h); known {
			t.Errorf("shaCryptMatches(%q) claims to know the scheme", h)
		}
	}
}

// TestShaCryptOpenSSL cross-checks with openssl passwd when it is installed.
func TestShaCryptOpenSSL(t *testing.T) {
	openssl := vmtest.LookPath(t, "openssl", "openssl")
	for _, pw := range []string{"a", "correct horse battery staple", strings.Repeat("ü", 40), "with:colon and $dollar"} {
		for _, alg := range []string{"-5", "-6"} {
			out, err := execpkg.Command(openssl, "passwd", alg, "-salt", "Zq8.xx/yy", pw).Output()
			if err != nil {
				t.Fatal(err)
			}
			want := strings.TrimSpace(string(out))
			if m, known := shaCryptMatches(pw, want); !m || !known {
				got, _ := shaCrypt(pw, want)
				t.Errorf("openssl passwd %s %q = %s; we compute %s", alg, pw, want, got)
			}
		}
	}
}
