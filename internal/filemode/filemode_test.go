package filemode

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want uint32
	}{
		{"0644", 0o644}, {"644", 0o644}, {"0o755", 0o755}, {"0O700", 0o700}, {"0", 0},
		{"4755", 0o4755}, {"2775", 0o2775}, {"01777", 0o1777}, {"7777", 0o7777}, {"00000644", 0o644},
	} {
		if got, err := Parse(tt.in); err != nil || got != tt.want {
			t.Errorf("Parse(%q) = %o, %v; want %o", tt.in, got, err, tt.want)
		}
	}
	for _, tt := range []struct {
		in   string
		want error
	}{
		{"", ErrSyntax}, {"8", ErrSyntax}, {"0o", ErrSyntax}, {"-644", ErrSyntax}, {"+644", ErrSyntax},
		{"0x1ff", ErrSyntax}, {"0o0o644", ErrSyntax}, {"6 44", ErrSyntax}, {" 644", ErrSyntax}, {"0_644", ErrSyntax},
		{"77777777777777", ErrSyntax}, // past 32 bits
		{"10000", ErrRange}, {"0o17777", ErrRange},
	} {
		if m, err := Parse(tt.in); !errors.Is(err, tt.want) {
			t.Errorf("Parse(%q) = %o, %v; want %v", tt.in, m, err, tt.want)
		}
	}
}

func TestConvert(t *testing.T) {
	for _, tt := range []struct {
		unix uint32
		mode fs.FileMode
	}{
		{0o644, 0o644},
		{0o4755, fs.ModeSetuid | 0o755},
		{0o2775, fs.ModeSetgid | 0o775},
		{0o1777, fs.ModeSticky | 0o777},
		{0o7777, fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky | 0o777},
	} {
		if got := FromUnix(tt.unix); got != tt.mode {
			t.Errorf("FromUnix(%o) = %v, want %v", tt.unix, got, tt.mode)
		}
		if got := ToUnix(tt.mode); got != tt.unix {
			t.Errorf("ToUnix(%v) = %o, want %o", tt.mode, got, tt.unix)
		}
		if got := ToUnix(tt.mode | fs.ModeDir); got != tt.unix {
			t.Errorf("ToUnix(%v) = %o: the file type is not a mode bit", tt.mode|fs.ModeDir, got)
		}
	}
	// st_mode file types.
	for _, tt := range []struct {
		unix uint32
		mode fs.FileMode
	}{
		{syscall.S_IFREG | 0o644, 0o644},
		{syscall.S_IFDIR | 0o1777, fs.ModeDir | fs.ModeSticky | 0o777},
		{syscall.S_IFLNK | 0o777, fs.ModeSymlink | 0o777},
		{syscall.S_IFBLK | 0o660, fs.ModeDevice | 0o660},
		{syscall.S_IFCHR | 0o666, fs.ModeDevice | fs.ModeCharDevice | 0o666},
		{syscall.S_IFIFO | 0o600, fs.ModeNamedPipe | 0o600},
		{syscall.S_IFSOCK | 0o755, fs.ModeSocket | 0o755},
	} {
		if got := FromUnix(tt.unix); got != tt.mode {
			t.Errorf("FromUnix(%#o) = %v, want %v", tt.unix, got, tt.mode)
		}
	}
}

func TestLsMode(t *testing.T) {
	for m, want := range map[os.FileMode]string{
		0o644:                                     "-rw-r--r--",
		os.ModeDir | 0o755:                        "drwxr-xr-x",
		os.ModeDir | os.ModeSticky | 0o777:        "drwxrwxrwt",
		os.ModeDir | os.ModeSticky | 0o770:        "drwxrwx--T",
		os.ModeSetuid | 0o4755&0o777:              "-rwsr-xr-x",
		os.ModeSetuid | 0o644:                     "-rwSr--r--",
		os.ModeSetgid | 0o2755&0o777 | os.ModeDir: "drwxr-sr-x",
		os.ModeSymlink | 0o777:                    "lrwxrwxrwx",
		os.ModeDevice | os.ModeCharDevice | 0o666: "crw-rw-rw-",
		os.ModeDevice | 0o660:                     "brw-rw----",
		os.ModeNamedPipe | 0o600:                  "prw-------",
		os.ModeSocket | 0o755:                     "srwxr-xr-x",
	} {
		if got := LsString(m); got != want {
			t.Errorf("LsString(%v) = %s, want %s", m, got, want)
		}
	}
}
