// Package fsopstest provides a fake fsops.Session for fast unit tests of
// operations and step kinds: file operations are served by the real agent
// code in-process over a host directory standing in for the image
// (appliancetest), while commands never run: each Exec is recorded and
// answered by the test's handler, so a test can drive useradd, chpasswd or
// a package manager without touching the host.
package fsopstest

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/imgbake/imgbake/appliance/appliancetest"
	"github.com/imgbake/imgbake/appliance/passwd"
	"github.com/imgbake/imgbake/appliance/proto"
	"github.com/imgbake/imgbake/fsops"
)

// Call is one command an operation asked for.
type Call struct {
	Argv  []string // nil for a shell command
	Shell string   // the /bin/sh -c command, "" for argv
	Env   []string
	Stdin string
}

// Line is the command as one line: the shell command or the argv joined.
func (c Call) Line() string {
	if c.Shell != "" {
		return c.Shell
	}
	return strings.Join(c.Argv, " ")
}

// Reply is what a faked command returns.
type Reply struct {
	RC             int
	Stdout, Stderr string
}

// Handler answers a command. A nil Handler answers with Emulate.
type Handler func(c Call) Reply

// Session is a fake fsops.Session (see the package comment).
type Session struct {
	fsops.Session // the in-process agent, for everything but commands
	Root          string

	mu      sync.Mutex
	calls   []Call
	handler Handler
}

var _ fsops.Session = (*Session)(nil)

// New serves root (an existing directory, the image's /) with the
// in-process agent and answers commands with h. It skips the test unless
// running as root (the agent chowns what it writes).
func New(tb testing.TB, root string, h Handler) *Session {
	tb.Helper()
	s, _ := appliancetest.Start(tb, root)
	return &Session{Session: s, Root: root, handler: h}
}

// Calls returns the commands run so far.
func (s *Session) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// Exec records the command and answers it with the handler.
func (s *Session) Exec(ctx context.Context, args proto.ExecArgs, stdin io.Reader, stdout, stderr io.Writer) (proto.ExecResult, error) {
	if err := ctx.Err(); err != nil {
		return proto.ExecResult{}, err
	}
	c := Call{Argv: args.Argv, Shell: args.Shell, Env: args.Env}
	if stdin != nil {
		b, err := io.ReadAll(stdin)
		if err != nil {
			return proto.ExecResult{}, err
		}
		c.Stdin = string(b)
	}
	s.mu.Lock()
	s.calls = append(s.calls, c)
	h := s.handler
	s.mu.Unlock()
	var r Reply
	if h != nil {
		r = h(c)
	} else {
		r = s.Emulate(c)
	}
	if stdout != nil {
		io.WriteString(stdout, r.Stdout)
	}
	if stderr != nil {
		io.WriteString(stderr, r.Stderr)
	}
	return proto.ExecResult{RC: r.RC}, nil
}

// ExecTTY is Exec without a terminal: the fake has none.
func (s *Session) ExecTTY(ctx context.Context, args proto.ExecArgs, stdin io.Reader, stdout io.Writer, _ <-chan proto.Winsize) (proto.ExecResult, error) {
	return s.Exec(ctx, args, stdin, stdout, stdout)
}

// Emulate carries out, on the fake's root, the few commands operations run
// for what the agent's file operations cannot express — ln -sfn, a
// one-level find -print0, useradd and chpasswd — and answers every other command
// with rc 0 and no output. Paths are resolved inside the root; the fake
// is for trusted test trees only.
func (s *Session) Emulate(c Call) Reply {
	in := func(p string) string { return filepath.Join(s.Root, filepath.Clean("/"+p)) }
	argv := c.Argv
	switch {
	case len(argv) == 5 && argv[0] == "ln" && argv[1] == "-sfn" && argv[2] == "--":
		_ = os.Remove(in(argv[4]))
		if err := os.Symlink(argv[3], in(argv[4])); err != nil {
			return Reply{RC: 1, Stderr: err.Error()}
		}
	case len(argv) == 7 && argv[0] == "find" && argv[2] == "-mindepth" && argv[6] == "-print0":
		ents, err := os.ReadDir(in(argv[1]))
		if err != nil {
			return Reply{RC: 1, Stderr: err.Error()}
		}
		var out strings.Builder
		for _, e := range ents {
			out.WriteString(strings.TrimSuffix(argv[1], "/") + "/" + e.Name() + "\x00")
		}
		return Reply{Stdout: out.String()}
	case len(argv) > 1 && argv[0] == "useradd":
		if err := s.useradd(in, argv[1:]); err != nil {
			return Reply{RC: 1, Stderr: err.Error()}
		}
	case len(argv) > 0 && argv[0] == "chpasswd":
		if err := s.chpasswd(in("/etc/shadow"), c.Stdin); err != nil {
			return Reply{RC: 1, Stderr: err.Error()}
		}
	}
	return Reply{}
}

// useradd adds the user named by the last argument with the next free
// uid >= 1000, its own group, -s SHELL, -d HOME (default /home/NAME,
// created with -m).
func (s *Session) useradd(in func(string) string, args []string) error {
	name := args[len(args)-1]
	shell, home, mkhome := "/bin/sh", "/home/"+name, false
	for i := 0; i < len(args)-1; i++ {
		switch args[i] {
		case "-m":
			mkhome = true
		case "-s":
			i++
			shell = args[i]
		case "-d":
			i++
			home = args[i]
		}
	}
	data, err := os.ReadFile(in("/etc/passwd"))
	if err != nil {
		return err
	}
	uid := 1000
	users, _ := passwd.ParseUsers(data)
	for _, u := range users {
		if u.Name == name {
			return fmt.Errorf("useradd: user %q already exists", name)
		}
		if u.UID >= uid && u.UID < 60000 {
			uid = u.UID + 1
		}
	}
	add := map[string]string{
		"/etc/passwd": fmt.Sprintf("%s:x:%d:%d::%s:%s\n", name, uid, uid, home, shell),
		"/etc/group":  fmt.Sprintf("%s:x:%d:\n", name, uid),
		"/etc/shadow": name + ":!:19000:0:99999:7:::\n",
	}
	for file, line := range add {
		f, err := os.OpenFile(in(file), os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
		if err != nil {
			return err
		}
		_, err = f.WriteString(line)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	if mkhome {
		if err := os.MkdirAll(in(home), 0o755); err != nil {
			return err
		}
		return os.Chown(in(home), uid, uid)
	}
	return nil
}

// chpasswd sets the SHA-512 hash of each "user:password" line in shadow.
func (s *Session) chpasswd(shadow, input string) error {
	b, err := os.ReadFile(shadow)
	if err != nil {
		return err
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	for _, entry := range strings.Split(strings.TrimSpace(input), "\n") {
		user, pw, ok := strings.Cut(entry, ":")
		if !ok {
			return fmt.Errorf("chpasswd: bad line %q", entry)
		}
		hash, err := fsops.SHA512Crypt(pw)
		if err != nil {
			return err
		}
		found := false
		for i, l := range lines {
			f := strings.Split(l, ":")
			if len(f) > 1 && f[0] == user {
				f[1] = hash
				lines[i], found = strings.Join(f, ":"), true
			}
		}
		if !found {
			return fmt.Errorf("chpasswd: user %q does not exist", user)
		}
	}
	return os.WriteFile(shadow, []byte(strings.Join(lines, "\n")+"\n"), 0o640)
}
