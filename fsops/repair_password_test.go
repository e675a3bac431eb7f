package fsops

import (
	"strings"
	"testing"
	"time"
)

func TestSetShadowEntry(t *testing.T) {
	now := time.Unix(20000*86400+5, 0)
	got := setShadowEntry("root:!:19000:0:99999:7:::\nbob:$6$x$y:19000:0:99999:7:::\n", "root", "$6$salt$hash", now)
	if got != "root:$6$salt$hash:20000:0:99999:7:::\nbob:$6$x$y:19000:0:99999:7:::\n" {
		t.Errorf("got %q", got)
	}
	got = setShadowEntry("root:*", "root", "H", now)
	if got != "root:H:20000::::::" {
		t.Errorf("short line: got %q", got)
	}
	got = setShadowEntry("bob:x:1:0:99999:7:::", "root", "H", now)
	if got != "bob:x:1:0:99999:7:::\nroot:H:20000:0:99999:7:::\n" {
		t.Errorf("added: got %q", got)
	}
	h, err := newSHA512Crypt("pass word")
	if err != nil || !strings.HasPrefix(h, "$6$") || len(strings.Split(h, "$")[2]) != 16 {
		t.Fatalf("newSHA512Crypt: %q %v", h, err)
	}
	if m, _ := shaCryptMatches("pass word", h); !m {
		t.Error("hash does not verify")
	}
}
