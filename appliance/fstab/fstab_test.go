package fstab

import (
	"reflect"
	"testing"
)

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{
		`/mnt/my\040disk`: "/mnt/my disk",
		`a\011b`:          "a\tb",
		`plain`:           "plain",
		`trailing\04`:     `trailing\04`, // too short: kept
		`bad\09x`:         `bad\09x`,     // not octal: kept
	} {
		if got := Unescape(in); got != want {
			t.Errorf("Unescape(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHasOption(t *testing.T) {
	for _, c := range []struct {
		opts, o string
		want    bool
	}{
		{"defaults,nofail", "nofail", true},
		{"defaults,nofailx", "nofail", false},
		{"bind", "bind", true},
		{"rbind", "bind", false},
		{"", "bind", false},
	} {
		if got := HasOption(c.opts, c.o); got != c.want {
			t.Errorf("HasOption(%q, %q) = %v", c.opts, c.o, got)
		}
	}
}

func TestParse(t *testing.T) {
	const data = "# /etc/fstab\n" +
		"UUID=abc / ext4 errors=remount-ro 0 1\n" +
		"\n" +
		"   # indented comment\n" +
		"#LABEL=x /x ext4 defaults 0 0\n" +
		"LABEL=my\\040data\t/mnt/my\\040data  xfs\tdefaults,nofail 0 2\r\n" +
		"/dev/vdb1 /short xfs\n" +
		"two fields\n" +
		"  /dev/vdc1   /padded   ext4  \n" +
		"tmpfs /tmp tmpfs defaults 0 0 extra"
	want := []Entry{
		{Line: 2, Spec: "UUID=abc", File: "/", VFSType: "ext4", MntOps: "errors=remount-ro", Freq: "0", PassNo: "1",
			Spans: [][2]int{{0, 8}, {9, 10}, {11, 15}, {16, 33}, {34, 35}, {36, 37}}},
		{Line: 6, Spec: "LABEL=my data", File: "/mnt/my data", VFSType: "xfs", MntOps: "defaults,nofail", Freq: "0", PassNo: "2",
			Spans: [][2]int{{0, 16}, {17, 32}, {34, 37}, {38, 53}, {54, 55}, {56, 57}}},
		{Line: 7, Spec: "/dev/vdb1", File: "/short", VFSType: "xfs", Spans: [][2]int{{0, 9}, {10, 16}, {17, 20}}},
		{Line: 9, Spec: "/dev/vdc1", File: "/padded", VFSType: "ext4", Spans: [][2]int{{2, 11}, {14, 21}, {24, 28}}},
		{Line: 10, Spec: "tmpfs", File: "/tmp", VFSType: "tmpfs", MntOps: "defaults", Freq: "0", PassNo: "0",
			Spans: [][2]int{{0, 5}, {6, 10}, {11, 16}, {17, 25}, {26, 27}, {28, 29}, {30, 35}}},
	}
	got := Parse([]byte(data))
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Parse:\n got %+v\nwant %+v", got, want)
	}
	for _, line := range []string{"", "   ", "# x y z", "#x y z", "a b", "\r\n"} {
		if e, ok := ParseLine(line); ok {
			t.Errorf("ParseLine(%q) = %+v, want no entry", line, e)
		}
	}
}

func TestEscape(t *testing.T) {
	for in, want := range map[string]string{
		"/mnt/my disk": `/mnt/my\040disk`,
		"a\tb\nc":      `a\011b\012c`,
		`back\slash`:   `back\134slash`,
		"plain":        "plain",
	} {
		if got := Escape(in); got != want {
			t.Errorf("Escape(%q) = %q, want %q", in, got, want)
		}
		if got := Unescape(Escape(in)); got != in {
			t.Errorf("Unescape(Escape(%q)) = %q", in, got)
		}
	}
}
