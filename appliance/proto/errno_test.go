package proto

import (
	"syscall"
	"testing"
)

func TestErrnoNames(t *testing.T) {
	for _, c := range []struct {
		e    syscall.Errno
		name string
	}{
		{syscall.ENOENT, "ENOENT"}, {syscall.ENOSPC, "ENOSPC"}, {syscall.EEXIST, "EEXIST"},
		{syscall.EACCES, "EACCES"}, {syscall.EPERM, "EPERM"}, {syscall.ENOTDIR, "ENOTDIR"},
		{syscall.EISDIR, "EISDIR"}, {syscall.EROFS, "EROFS"}, {syscall.ENOTEMPTY, "ENOTEMPTY"},
		{syscall.ELOOP, "ELOOP"}, {syscall.EXDEV, "EXDEV"}, {syscall.EDQUOT, "EDQUOT"},
	} {
		if got := ErrnoName(c.e); got != c.name {
			t.Errorf("ErrnoName(%d) = %q, want %q", int(c.e), got, c.name)
		}
		if !ErrnoIs(ErrnoName(c.e), c.e) {
			t.Errorf("ErrnoIs(%q, %s) = false", c.name, c.name)
		}
		if ErrnoIs(c.name, syscall.EIO) || ErrnoIs("", c.e) {
			t.Errorf("%s matches what it does not name", c.name)
		}
	}
	// Unclassified errnos travel by number and match nothing.
	if got := ErrnoName(syscall.EIO); got != "errno 5" {
		t.Errorf("ErrnoName(EIO) = %q, want %q", got, "errno 5")
	}
	if ErrnoIs("errno 5", syscall.EIO) || ErrnoIs("", syscall.EIO) {
		t.Error("an unclassified errno matched")
	}
}
