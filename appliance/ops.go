package appliance

import (
	"context"
	"io"
	"io/fs"

	"github.com/imgbake/imgbake/appliance/proto"
	"github.com/imgbake/imgbake/internal/filemode"
)

// Hello checks the agent is responsive.
func (s *Session) Hello(ctx context.Context) (proto.Ready, error) {
	var r proto.Ready
	err := s.call(ctx, proto.OpHello, nil, nil, nil, &r)
	return r, err
}

// Mount finds the image's root and fstab filesystems and mounts them.
func (s *Session) Mount(ctx context.Context, args proto.MountArgs) (*proto.MountResult, error) {
	var r proto.MountResult
	if args.Disks == 0 {
		args.Disks = s.disks
	}
	if err := s.call(ctx, proto.OpMount, args, nil, nil, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Inspect describes the mounted operating system.
func (s *Session) Inspect(ctx context.Context) (*proto.OSInfo, error) {
	var r proto.OSInfo
	if err := s.call(ctx, proto.OpInspect, nil, nil, nil, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// outputFrames writes a command's stdout and stderr frames to stdout and
// stderr (either may be nil: that stream is dropped).
func outputFrames(stdout, stderr io.Writer) func(proto.Frame) error {
	return func(f proto.Frame) error {
		var w io.Writer
		switch f.Type {
		case proto.TStdout:
			w = stdout
		case proto.TStderr:
			w = stderr
		}
		if w != nil {
			_, err := w.Write(f.Payload)
			return err
		}
		return nil
	}
}

// Exec runs a command inside the image. stdin may be nil; stdout and stderr
// receive output as it arrives.
func (s *Session) Exec(ctx context.Context, args proto.ExecArgs, stdin io.Reader, stdout, stderr io.Writer) (proto.ExecResult, error) {
	var r proto.ExecResult
	args.Stdin = stdin != nil
	out := outputFrames(stdout, stderr)
	err := s.callStream(ctx, proto.OpExec, args, stdin, out, &r, callOptions{inputOptional: true})
	return r, err
}

// ExecStream is Exec for a long-lived command fed over stdin as it goes
// (a service answering one request at a time): input is forwarded as soon
// as it is written, not gathered into full chunks first.
func (s *Session) ExecStream(ctx context.Context, args proto.ExecArgs, stdin io.Reader, stdout, stderr io.Writer) (proto.ExecResult, error) {
	var r proto.ExecResult
	args.Stdin = stdin != nil
	out := outputFrames(stdout, stderr)
	err := s.callStream(ctx, proto.OpExec, args, stdin, out, &r, callOptions{inputOptional: true, streaming: true})
	return r, err
}

// WriteFile atomically writes r to path inside the image. It reports
// whether the file changed.
func (s *Session) WriteFile(ctx context.Context, args proto.WriteArgs, r io.Reader) (bool, error) {
	var res proto.ChangeResult
	err := s.call(ctx, proto.OpWrite, args, r, nil, &res)
	return res.Changed, err
}

// ReadFile streams a file of the image into w.
func (s *Session) ReadFile(ctx context.Context, path string, w io.Writer) (int64, error) {
	var res proto.ReadResult
	err := s.call(ctx, proto.OpRead, proto.PathArgs{Path: path}, nil, dataTo(w), &res)
	return res.Size, err
}

// Stat is lstat inside the image; Exists is false when the path is absent.
func (s *Session) Stat(ctx context.Context, path string) (proto.StatResult, error) {
	var res proto.StatResult
	err := s.call(ctx, proto.OpStat, proto.PathArgs{Path: path}, nil, nil, &res)
	return res, err
}

// Mkdir creates a directory; mode may be nil.
func (s *Session) Mkdir(ctx context.Context, path string, mode *fs.FileMode, owner string, parents bool) (bool, error) {
	var res proto.ChangeResult
	args := proto.MkdirArgs{Path: path, Owner: owner, Parents: parents}
	if mode != nil {
		m := filemode.ToUnix(*mode)
		args.Mode = &m
	}
	err := s.call(ctx, proto.OpMkdir, args, nil, nil, &res)
	return res.Changed, err
}

// Delete removes a path (recursively when asked).
func (s *Session) Delete(ctx context.Context, path string, recursive bool) (bool, error) {
	var res proto.ChangeResult
	err := s.call(ctx, proto.OpDelete, proto.DeleteArgs{Path: path, Recursive: recursive}, nil, nil, &res)
	return res.Changed, err
}

// TarIn extracts the tar stream r into dest inside the image.
func (s *Session) TarIn(ctx context.Context, dest string, r io.Reader) (proto.TarResult, error) {
	var res proto.TarResult
	err := s.call(ctx, proto.OpTarIn, proto.TarInArgs{Dest: dest}, r, nil, &res)
	return res, err
}

// TarInStaged extracts a tar stream staged on the data disk (StagedStream)
// into dest.
func (s *Session) TarInStaged(ctx context.Context, dest string, staged StagedRange) (proto.TarResult, error) {
	var res proto.TarResult
	err := s.call(ctx, proto.OpTarIn, proto.TarInArgs{Dest: dest, Staged: &proto.DataRange{Offset: staged.Offset, Size: staged.Size}}, nil, nil, &res)
	return res, err
}

// TarOut streams path (a file or tree) out of the image as tar into w.
func (s *Session) TarOut(ctx context.Context, path string, w io.Writer) (proto.TarResult, error) {
	var res proto.TarResult
	err := s.call(ctx, proto.OpTarOut, proto.TarOutArgs{Path: path}, nil, dataTo(w), &res)
	return res, err
}

func dataTo(w io.Writer) func(proto.Frame) error {
	return func(f proto.Frame) error {
		if f.Type == proto.TData {
			_, err := w.Write(f.Payload)
			return err
		}
		return nil
	}
}

// ExecTTY runs an interactive command on a terminal inside the image (or
// the appliance, with args.NoChroot). Keystrokes are read from stdin as
// they come, output goes to stdout, and every Winsize sent on resize
// resizes the terminal. It returns when the command exits, without
// waiting for stdin to end.
func (s *Session) ExecTTY(ctx context.Context, args proto.ExecArgs, stdin io.Reader, stdout io.Writer, resize <-chan proto.Winsize) (proto.ExecResult, error) {
	var r proto.ExecResult
	args.TTY, args.Stdin = true, true
	out := func(f proto.Frame) error {
		if f.Type == proto.TStdout || f.Type == proto.TStderr {
			_, err := stdout.Write(f.Payload)
			return err
		}
		return nil
	}
	err := s.callStream(ctx, proto.OpExec, args, stdin, out, &r, callOptions{interactive: true, resize: resize})
	return r, err
}
