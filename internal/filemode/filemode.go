// Package filemode converts file modes between their encodings: octal
// text ("0644", "4755"), the unix mode bits that chmod(2), st_mode and the
// agent protocol's mode fields use, and Go's fs.FileMode, which keeps
// setuid, setgid and sticky outside the low 12 bits. It imports nothing
// beyond the standard library, so the agent's static binary can use it.
package filemode

import (
	"errors"
	"io/fs"
	"strconv"
	"strings"
)

// Parse errors.
var (
	ErrSyntax = errors.New("not an octal mode")
	ErrRange  = errors.New("out of range (max 07777)")
)

// Max is the largest mode Parse accepts: permissions with setuid, setgid
// and sticky.
const Max = 0o7777

// Parse reads an octal mode such as "0644", "644", "0o755" or "4755" (a
// "0o" or "0O" prefix is allowed, a sign is not) into unix mode bits.
// It fails with ErrSyntax or ErrRange (above Max).
func Parse(s string) (uint32, error) {
	digits := s
	if rest, ok := strings.CutPrefix(s, "0o"); ok {
		digits = rest
	} else if rest, ok := strings.CutPrefix(s, "0O"); ok {
		digits = rest
	}
	v, err := strconv.ParseUint(digits, 8, 32)
	if err != nil {
		return 0, ErrSyntax
	}
	if v > Max {
		return 0, ErrRange
	}
	return uint32(v), nil
}

// Unix file type and special bits (the same on every unix).
const (
	sIFMT   = 0o170000
	sIFSOCK = 0o140000
	sIFLNK  = 0o120000
	sIFBLK  = 0o060000
	sIFDIR  = 0o040000
	sIFCHR  = 0o020000
	sIFIFO  = 0o010000
	sISUID  = 0o4000
	sISGID  = 0o2000
	sISVTX  = 0o1000
)

// ToUnix returns m's permission, setuid, setgid and sticky bits as unix
// mode bits (fs.ModeSetuid|0755 is 04755); the file type is left out.
func ToUnix(m fs.FileMode) uint32 {
	u := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		u |= sISUID
	}
	if m&fs.ModeSetgid != 0 {
		u |= sISGID
	}
	if m&fs.ModeSticky != 0 {
		u |= sISVTX
	}
	return u
}

// FromUnix converts unix mode bits to fs.FileMode: permissions, setuid,
// setgid and sticky and, for an st_mode, the file type.
func FromUnix(m uint32) fs.FileMode {
	fm := fs.FileMode(m & 0o777)
	if m&sISUID != 0 {
		fm |= fs.ModeSetuid
	}
	if m&sISGID != 0 {
		fm |= fs.ModeSetgid
	}
	if m&sISVTX != 0 {
		fm |= fs.ModeSticky
	}
	switch m & sIFMT {
	case sIFDIR:
		fm |= fs.ModeDir
	case sIFLNK:
		fm |= fs.ModeSymlink
	case sIFBLK:
		fm |= fs.ModeDevice
	case sIFCHR:
		fm |= fs.ModeDevice | fs.ModeCharDevice
	case sIFIFO:
		fm |= fs.ModeNamedPipe
	case sIFSOCK:
		fm |= fs.ModeSocket
	}
	return fm
}

// LsString renders a mode the way ls -l does (drwxr-sr-x, -rwsr-xr-x,
// drwxrwxrwt).
func LsString(m fs.FileMode) string {
	b := []byte("----------")
	switch {
	case m.IsDir():
		b[0] = 'd'
	case m&fs.ModeSymlink != 0:
		b[0] = 'l'
	case m&fs.ModeCharDevice != 0:
		b[0] = 'c'
	case m&fs.ModeDevice != 0:
		b[0] = 'b'
	case m&fs.ModeNamedPipe != 0:
		b[0] = 'p'
	case m&fs.ModeSocket != 0:
		b[0] = 's'
	}
	const rwx = "rwxrwxrwx"
	for i := 0; i < 9; i++ {
		if m&(1<<uint(8-i)) != 0 {
			b[i+1] = rwx[i]
		}
	}
	special := func(i int, set bool, on, off byte) {
		if !set {
			return
		}
		if b[i] == 'x' {
			b[i] = on
		} else {
			b[i] = off
		}
	}
	special(3, m&fs.ModeSetuid != 0, 's', 'S')
	special(6, m&fs.ModeSetgid != 0, 's', 'S')
	special(9, m&fs.ModeSticky != 0, 't', 'T')
	return string(b)
}
