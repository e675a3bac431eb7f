package fsops

import (
	"bytes"
	"errors"
	"fmt"
	"path"
	"strings"
	"testing"
	"time"
)

func TestSetHostsEntry(t *testing.T) {
	cases := []struct {
		name        string
		hosts       string
		fqdn, short string
		want        string
	}{
		{
			name:  "existing line replaced in place",
			hosts: "127.0.0.1\tlocalhost\n127.0.1.1\told.example.com old\n::1\tlocalhost ip6-localhost\n",
			fqdn:  "web.example.com", short: "web",
			want: "127.0.0.1\tlocalhost\n127.0.1.1\tweb.example.com web\n::1\tlocalhost ip6-localhost\n",
		},
		{
			name:  "existing line with odd spacing",
			hosts: "127.0.0.1 localhost\n   127.0.1.1    old   \n",
			fqdn:  "web", short: "web",
			want: "127.0.0.1 localhost\n127.0.1.1\tweb\n",
		},
		{
			name:  "existing line, no trailing newline kept as is",
			hosts: "127.0.0.1 localhost\n127.0.1.1 old",
			fqdn:  "web", short: "web",
			want: "127.0.0.1 localhost\n127.0.1.1\tweb",
		},
		{
			name:  "added when missing",
			hosts: "127.0.0.1\tlocalhost\n",
			fqdn:  "web.example.com", short: "web",
			want: "127.0.0.1\tlocalhost\n127.0.1.1\tweb.example.com web\n",
		},
		{
			name:  "added after a line without trailing newline",
			hosts: "127.0.0.1\tlocalhost",
			fqdn:  "web", short: "web",
			want: "127.0.0.1\tlocalhost\n127.0.1.1\tweb\n",
		},
		{
			name:  "empty file gets localhost too",
			hosts: "",
			fqdn:  "web.example.com", short: "web",
			want: "127.0.0.1\tlocalhost\n127.0.1.1\tweb.example.com web\n",
		},
		{
			name:  "short name only once",
			hosts: "",
			fqdn:  "web", short: "web",
			want: "127.0.0.1\tlocalhost\n127.0.1.1\tweb\n",
		},
		{
			name:  "commented entry is not the entry",
			hosts: "#127.0.1.1 old\n",
			fqdn:  "web", short: "web",
			want: "#127.0.1.1 old\n127.0.1.1\tweb\n",
		},
		{
			name:  "similar address is not the entry",
			hosts: "127.0.1.10 other\n",
			fqdn:  "web", short: "web",
			want: "127.0.1.10 other\n127.0.1.1\tweb\n",
		},
		{
			name:  "name mentioned on another line does not count",
			hosts: "127.0.0.1 localhost web\n",
			fqdn:  "web", short: "web",
			want: "127.0.0.1 localhost web\n127.0.1.1\tweb\n",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := setHostsEntry(c.hosts, c.fqdn, c.short)
			if got != c.want {
				t.Errorf("setHostsEntry(%q, %q, %q)\n got %q\nwant %q", c.hosts, c.fqdn, c.short, got, c.want)
			}
			// Hostname relies on a second run changing nothing.
			if again := setHostsEntry(got, c.fqdn, c.short); again != got {
				t.Errorf("not idempotent: %q -> %q", got, again)
			}
		})
	}
}

func TestCommandErrorMessage(t *testing.T) {
	cases := []struct {
		err  CommandError
		want string
	}{
		{CommandError{RC: 1}, "exited with rc 1"},
		{CommandError{RC: 255}, "exited with rc 255"},
		{CommandError{RC: 137, Signal: "KILL"}, "killed by signal KILL (rc 137)"},
		{CommandError{RC: -1, Signal: "SEGV"}, "killed by signal SEGV (rc -1)"},
		// A timeout wins over the signal used to enforce it.
		{CommandError{RC: 137, Signal: "KILL", TimedOut: true, Timeout: 90 * time.Second}, "timed out after 1m30s and was killed"},
		{CommandError{TimedOut: true, Timeout: 1500 * time.Millisecond}, "timed out after 1.5s and was killed"},
	}
	for _, c := range cases {
		if got := c.err.Error(); got != c.want {
			t.Errorf("%+v: %q, want %q", c.err, got, c.want)
		}
	}
	wrapped := fmt.Errorf("step 3: %w", &CommandError{RC: 2})
	var ce *CommandError
	if !errors.As(wrapped, &ce) || ce.RC != 2 {
		t.Errorf("errors.As through wrapping: %v", ce)
	}
}

func TestHumanBytes(t *testing.T) {
	cases := []struct {
		n    int64
		want string
	}{
		{0, "0 B"},
		{1, "1 B"},
		{1023, "1023 B"},
		{1024, "1.0 KiB"},
		{1536, "1.5 KiB"},
		{10 * 1024, "10.0 KiB"},
		{1 << 20, "1.0 MiB"},
		{3*(1<<20) + (1 << 19), "3.5 MiB"},
		{1 << 30, "1.0 GiB"},
		{5 << 30, "5.0 GiB"},
		{1 << 40, "1024.0 GiB"},
	}
	for _, c := range cases {
		if got := HumanBytes(c.n); got != c.want {
			t.Errorf("HumanBytes(%d) = %q, want %q", c.n, got, c.want)
		}
	}
}

func TestSafeName(t *testing.T) {
	ok := []struct{ in, want string }{
		{"a", "a"},
		{"a/b/c", "a/b/c"},
		{"./a", "a"},
		{"a/", "a"},
		{"a//b", "a/b"},
		{"a/./b/", "a/b"},
		{".", "."},
		{"./", "."},
		{"...", "..."},
		{"..a", "..a"},
		{"a..", "a.."},
		{"a/..b/c", "a/..b/c"},
		{`..\a`, `..\a`}, // a backslash is an ordinary character on Linux
		{"ünï cødé", "ünï cødé"},
		{strings.Repeat("x/", 1000) + "y", strings.Repeat("x/", 1000) + "y"},
	}
	for _, c := range ok {
		got, err := safeName(c.in)
		if err != nil || got != c.want {
			t.Errorf("safeName(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
		if path.IsAbs(got) || got == ".." || strings.HasPrefix(got, "../") || got != path.Clean(got) {
			t.Errorf("safeName(%q) = %q is not a clean relative name", c.in, got)
		}
	}
	bad := []string{
		"", "\x00", "a\x00b", "a/\x00",
		"/", "/a", "//a", "/../a",
		"..", "../", "../a", "a/..", "a/../b", "a/b/../..", "./..", "a/./../b",
		strings.Repeat("a/", 500) + "../../x",
	}
	for _, in := range bad {
		got, err := safeName(in)
		if !errors.Is(err, ErrUnsafePath) {
			t.Errorf("safeName(%q) = %q, %v; want ErrUnsafePath", in, got, err)
		}
	}
}

func TestCapture(t *testing.T) {
	var live bytes.Buffer
	c := &capture{live: &live}
	chunk := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	for i := 0; i < 5; i++ {
		chunk[0] = byte('A' + i)
		if n, err := c.Write(chunk); n != len(chunk) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	if live.Len() != 5*len(chunk) {
		t.Errorf("live copy has %d bytes, want %d", live.Len(), 5*len(chunk))
	}
	s := c.String()
	if len(s) != maxCapture || s[0] != 'E' {
		t.Errorf("kept %d bytes starting %q, want the last %d", len(s), s[0], maxCapture)
	}
	if c.buf.Len() > 2*maxCapture+len(chunk) {
		t.Errorf("buffer grew to %d", c.buf.Len())
	}
	small := &capture{}
	_, _ = small.Write([]byte("hi"))
	if small.String() != "hi" {
		t.Errorf("small capture = %q", small.String())
	}
}

func TestLimitWriter(t *testing.T) {
	var buf bytes.Buffer
	w := &limitWriter{w: &buf, n: 5}
	if _, err := w.Write([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("de")); err != nil || w.over {
		t.Fatalf("exactly at the limit: %v over=%v", err, w.over)
	}
	if _, err := w.Write([]byte("f")); err == nil || !w.over {
		t.Fatalf("over the limit: %v over=%v", err, w.over)
	}
	if buf.String() != "abcde" {
		t.Errorf("wrote %q", buf.String())
	}
}
