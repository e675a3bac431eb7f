package proto

// File metadata operations. Every path is absolute inside the image and
// resolved by the agent with RESOLVE_IN_ROOT, so no symlink of the image can
// lead outside it. Each answers a ChangeResult (Realpath a RealpathResult)
// whose Changed is false when the image already was as asked.
const (
	OpChmod    = "chmod"    // ChmodArgs: set permission bits (a final symlink is followed, inside the root)
	OpChown    = "chown"    // ChownArgs: set owner and group (a final symlink is followed); mode bits are kept
	OpRename   = "rename"   // RenameArgs: rename(2) without following either final component
	OpSymlink  = "symlink"  // SymlinkArgs: create or atomically retarget a symlink
	OpTruncate = "truncate" // TruncateArgs: cut a regular file to 0 bytes in place
	OpRealpath = "realpath" // PathArgs: the path with every symlink resolved inside the root
)

// ChmodArgs sets the permission bits (0o7777, with setuid/setgid/sticky)
// of Path.
type ChmodArgs struct {
	Path string `json:"path"`
	Mode uint32 `json:"mode"`
}

// ChownArgs sets the owner of Path; Owner is "user[:group]", names or ids,
// resolved with the image's own /etc/passwd and /etc/group (a user alone
// gets the user's primary group, as WriteArgs.Owner).
type ChownArgs struct {
	Path  string `json:"path"`
	Owner string `json:"owner"`
}

// RenameArgs moves Src to Dest (the new path, not a directory to move into).
// A missing Src with an existing Dest is taken as already moved (unchanged).
// Across filesystems the agent fails with EXDEV.
type RenameArgs struct {
	Src  string `json:"src"`
	Dest string `json:"dest"`
}

// SymlinkArgs makes Path a symlink to Target (stored verbatim). An existing
// symlink or non-directory at Path is replaced atomically; a directory is an
// error (EISDIR).
type SymlinkArgs struct {
	Target string `json:"target"`
	Path   string `json:"path"`
}

// TruncateArgs empties the regular file Path (a final symlink is followed
// inside the root). With Create a missing file is created empty (0644).
type TruncateArgs struct {
	Path   string `json:"path"`
	Create bool   `json:"create,omitempty"`
}

// RealpathResult is Path with all symlinks resolved inside the image's root.
// When the final component does not exist (a dangling symlink's target, or
// a plain missing name) Exists is false and Path is where it would be.
type RealpathResult struct {
	Path   string `json:"path"`
	Exists bool   `json:"exists"`
}
