package appliance

import (
	"context"

	"github.com/imgbake/imgbake/appliance/proto"
)

// Chmod sets the permission bits (unix encoding, up to 07777) of path; a
// final symlink is followed inside the image. It reports whether the mode
// changed.
func (s *Session) Chmod(ctx context.Context, path string, mode uint32) (bool, error) {
	var res proto.ChangeResult
	err := s.call(ctx, proto.OpChmod, proto.ChmodArgs{Path: path, Mode: mode}, nil, nil, &res)
	return res.Changed, err
}

// Chown sets the owner ("user[:group]", resolved in the image) of path; a
// final symlink is followed inside the image. Mode bits, setuid included,
// are kept.
func (s *Session) Chown(ctx context.Context, path, owner string) (bool, error) {
	var res proto.ChangeResult
	err := s.call(ctx, proto.OpChown, proto.ChownArgs{Path: path, Owner: owner}, nil, nil, &res)
	return res.Changed, err
}

// Rename moves src to the path dest. A missing src with an existing dest is
// reported unchanged (already moved). Across filesystems it fails with
// EXDEV.
func (s *Session) Rename(ctx context.Context, src, dest string) (bool, error) {
	var res proto.ChangeResult
	err := s.call(ctx, proto.OpRename, proto.RenameArgs{Src: src, Dest: dest}, nil, nil, &res)
	return res.Changed, err
}

// Symlink makes path a symlink to target, replacing an existing symlink or
// file atomically; unchanged when it already points there.
func (s *Session) Symlink(ctx context.Context, target, path string) (bool, error) {
	var res proto.ChangeResult
	err := s.call(ctx, proto.OpSymlink, proto.SymlinkArgs{Target: target, Path: path}, nil, nil, &res)
	return res.Changed, err
}

// Truncate empties the regular file at path in place (inode, mode and owner
// kept); with create a missing file is created empty.
func (s *Session) Truncate(ctx context.Context, path string, create bool) (bool, error) {
	var res proto.ChangeResult
	err := s.call(ctx, proto.OpTruncate, proto.TruncateArgs{Path: path, Create: create}, nil, nil, &res)
	return res.Changed, err
}

// Realpath resolves every symlink in path inside the image.
func (s *Session) Realpath(ctx context.Context, path string) (proto.RealpathResult, error) {
	var res proto.RealpathResult
	err := s.call(ctx, proto.OpRealpath, proto.PathArgs{Path: path}, nil, nil, &res)
	return res, err
}
