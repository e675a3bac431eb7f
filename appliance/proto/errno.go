package proto

import (
	"fmt"
	"syscall"
)

// errnoNames are the errnos a Result names symbolically (Result.Errno), so
// the host can match a remote failure with errors.Is(err, syscall.ENOSPC)
// and friends. Any other errno travels as "errno N" and matches nothing.
var errnoNames = map[syscall.Errno]string{
	syscall.ENOENT: "ENOENT", syscall.ENOSPC: "ENOSPC", syscall.EEXIST: "EEXIST", syscall.EACCES: "EACCES",
	syscall.EPERM: "EPERM", syscall.ENOTDIR: "ENOTDIR", syscall.EISDIR: "EISDIR", syscall.EROFS: "EROFS",
	syscall.ENOTEMPTY: "ENOTEMPTY", syscall.ELOOP: "ELOOP", syscall.EXDEV: "EXDEV", syscall.EDQUOT: "EDQUOT",
}

// ErrnoName is what the agent puts in Result.Errno for e: its symbolic
// name ("ENOENT") when the host classifies it, else "errno N".
func ErrnoName(e syscall.Errno) string {
	if n, ok := errnoNames[e]; ok {
		return n
	}
	return fmt.Sprintf("errno %d", int(e))
}

// ErrnoIs reports whether name, a Result.Errno, stands for e. Only the
// symbolically named errnos match; "" and "errno N" match none.
func ErrnoIs(name string, e syscall.Errno) bool {
	n, ok := errnoNames[e]
	return ok && n == name
}
