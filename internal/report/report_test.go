package report

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/imgbake/imgbake/appliance/proto"
	"github.com/imgbake/imgbake/fsops"
)

func TestSafeName(t *testing.T) {
	for in, want := range map[string]string{
		"plain":          "plain",
		"with space":     "with space",
		"ünïcode":        "ünïcode",
		"esc\x1b[2Jcape": `"esc\x1b[2Jcape"`,
		"new\nline":      `"new\nline"`,
		"bad\xffutf8":    `"bad\xffutf8"`,
	} {
		if got := SafeName(in); got != want {
			t.Errorf("SafeName(%q) = %s, want %s", in, got, want)
		}
	}
}

// TestIndentWriter: every line is prefixed, whatever the writes' sizes;
// CR before a newline is dropped and Flush ends a last partial line.
func TestIndentWriter(t *testing.T) {
	var out bytes.Buffer
	iw := &IndentWriter{W: &out, Prefix: "   "}
	for _, s := range []string{"Pass 1: ", "checking\r\nPass 2\n", "", "tail"} {
		if n, err := iw.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	if got := out.String(); got != "   Pass 1: checking\n   Pass 2\n" {
		t.Errorf("before Flush: %q", got)
	}
	iw.Flush()
	iw.Flush()
	if got := out.String(); got != "   Pass 1: checking\n   Pass 2\n   tail\n" {
		t.Errorf("after Flush: %q", got)
	}
}

// TestFstab: each entry with its state and device; names from the image
// are quoted when they hold control characters.
func TestFstab(t *testing.T) {
	var out bytes.Buffer
	Fstab(&out, &fsops.FstabReport{})
	if out.String() != "the image has no /etc/fstab\n" {
		t.Errorf("no fstab: %q", out.String())
	}
	out.Reset()
	Fstab(&out, &fsops.FstabReport{Exists: true, Entries: []proto.FstabEntry{
		{Line: 1, Spec: "UUID=abc", Mountpoint: "/", Status: "ok", Device: "/dev/vda1", FSType: "ext4"},
		{Line: 3, Spec: "LABEL=x\x1b[2J", Mountpoint: "/data", Status: "missing", Note: "no such device"},
	}})
	want := fmt.Sprintf("line %-3d %-10s %-45s %-16s %s\n", 1, "ok", "UUID=abc", "/", "/dev/vda1 (ext4)") +
		fmt.Sprintf("line %-3d %-10s %-45s %-16s %s\n", 3, "missing", `"LABEL=x\x1b[2J"`, "/data", "no such device")
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
	out.Reset()
	FstabFixes(&out, []fsops.FstabFix{{Line: 3, What: "commented out", Old: "LABEL=x /data ext4 defaults 0 2", New: "#LABEL=x /data ext4 defaults 0 2"}, {Line: 4, What: "kept"}})
	if want := "line 3: commented out\n  - LABEL=x /data ext4 defaults 0 2\n  + #LABEL=x /data ext4 defaults 0 2\nline 4: kept\n"; out.String() != want {
		t.Errorf("FstabFixes: %q, want %q", out.String(), want)
	}
}
