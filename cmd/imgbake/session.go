package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/imgbake/imgbake/appliance"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/imgbake/imgbake/image"
	"github.com/imgbake/imgbake/recipes"
)

func sessionCommand() *cli.Command {
	return &cli.Command{
		Name:  "session",
		Usage: "keep an image open in one booted appliance across many commands (start, exec, put, fetch, run, list, stop)",
		Description: "A session boots the appliance once and serves every later command on it: `session exec NAME -- true`\n" +
			"costs a round trip, not a boot. Changes go to a private overlay that `session stop` commits\n" +
			"(or drops with --discard). A session whose --owner-pid exits, or that sits idle past\n" +
			"--idle-timeout, stops itself and discards.",
		Subcommands: withUsageCode([]*cli.Command{
			sessionStartCommand(),
			sessionExecCommand(),
			sessionPutCommand(),
			sessionFetchCommand(),
			sessionRunCommand(),
			sessionListCommand(),
			sessionStopCommand(),
			sessionServeCommand(),
		}),
	}
}

func withUsageCode(cmds []*cli.Command) []*cli.Command {
	for _, c := range cmds {
		c.OnUsageError = func(_ *cli.Context, err error, _ bool) error { return withCode(ExitUsage, err) }
	}
	return cmds
}

func sessionStdio(c *cli.Context) Stdio {
	return Stdio{In: c.App.Reader, Out: c.App.Writer, Err: c.App.ErrWriter}
}

func sessionStartCommand() *cli.Command {
	return &cli.Command{
		Name:      "start",
		Usage:     "boot the appliance for an image and keep it; prints the session name when it is ready",
		ArgsUsage: " ",
		Flags: append(diskFlags(),
			&cli.StringFlag{Name: "name", Usage: "session `NAME` (default: from the disk's file name)"},
			&cli.IntFlag{Name: "owner-pid", Usage: "stop and discard when process `PID` exits"},
			&cli.DurationFlag{Name: "idle-timeout", Value: 15 * time.Minute, Usage: "stop and discard after this long without a request (0: never)"},
			&cli.BoolFlag{Name: "network", Usage: "give the appliance a network for package steps of `session run`"},
			&cli.BoolFlag{Name: "reuse", Usage: "if session --name is already running on the same disk, use it (wait until it is ready)"},
			&cli.BoolFlag{Name: "attach", Usage: "only use the running session --name on the same disk: fail if it is not running (never boot a new one)"},
		),
		Action: func(c *cli.Context) error { return sessionStart(c, sessionStdio(c)) },
	}
}

func sessionStart(c *cli.Context, stdio Stdio) error {
	ctx := c.Context
	if c.NArg() != 0 {
		return usageErr("session start takes no arguments (got %q): use -a DISK", c.Args().Slice())
	}
	disks, err := checkDisks(c)
	if err != nil {
		return err
	}
	if _, err := parseMounts(c.StringSlice("mount")); err != nil {
		return err
	}
	name := c.String("name")
	if name != "" {
		if err := checkSessionName(name); err != nil {
			return err
		}
	} else if c.Bool("reuse") || c.Bool("attach") {
		return usageErr("--reuse and --attach need --name")
	}
	var want []sessionDisk
	for _, d := range disks {
		sd, err := diskIdentity(d)
		if err != nil {
			return fmt.Errorf("%w: %s", image.ErrNotFound, d)
		}
		want = append(want, sd)
	}
	ownerID := ""
	if pid := c.Int("owner-pid"); pid != 0 {
		if ownerID, err = appliance.ProcessID(pid); err != nil {
			return usageErr("--owner-pid %d: no such process", pid)
		}
	}
	base, err := sessionsBase()
	if err != nil {
		return withCode(ExitImage, err)
	}
	running := scanSessions(base, nil)
	if c.Bool("attach") {
		if _, err := os.Stat(filepath.Join(base, name)); err != nil {
			return withCode(ExitImage, fmt.Errorf("session %s is not running any more (its log: %s); its changes are lost", name, filepath.Join(base, name+".log")))
		}
		return reuseSession(ctx, stdio, base, name, want)
	}
	for _, s := range running {
		if !sharesDisk(s.info.Disks, want) {
			continue
		}
		if c.Bool("reuse") && s.info.Name == name {
			return reuseSession(ctx, stdio, base, name, want)
		}
		return withCode(ExitImage, fmt.Errorf("%w: %s is already open in session %s (pid %d): use that session, or stop it first with `imgbake session stop %s`",
			image.ErrLocked, sharedPath(s.info.Disks, want), s.info.Name, s.info.PID, s.info.Name))
	}
	if name == "" {
		name = defaultSessionName(base, disks[0])
	}
	dir := filepath.Join(base, name)
	if err := os.Mkdir(dir, 0o700); err != nil {
		if !errors.Is(err, os.ErrExist) {
			return withCode(ExitImage, fmt.Errorf("creating the session directory: %w", err))
		}
		if c.Bool("reuse") {
			return reuseSession(ctx, stdio, base, name, want)
		}
		return withCode(ExitUsage, fmt.Errorf("a session named %s is already running: pick another --name", name))
	}
	self, err := appliance.ProcessID(os.Getpid())
	if err == nil {
		err = writeSessionInfo(dir, sessionInfo{Name: name, State: stateStarting, PID: os.Getpid(), ProcID: self, Disks: want, Started: time.Now().UTC()})
	}
	if err != nil {
		os.RemoveAll(dir)
		return withCode(ExitImage, err)
	}
	return spawnSession(ctx, c, stdio, base, name, want, ownerID)
}

// spawnSession starts `imgbake session serve` detached (its own session,
// no terminal, output to the session log) and waits for its report.
func spawnSession(ctx context.Context, c *cli.Context, stdio Stdio, base, name string, disks []sessionDisk, ownerID string) (err error) {
	dir := filepath.Join(base, name)
	defer func() {
		if err != nil {
			removeSessionDir(base, name)
		}
	}()
	logFile, err := os.OpenFile(filepath.Join(dir, sessLog), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return withCode(ExitImage, fmt.Errorf("session log: %w", err))
	}
	defer logFile.Close()
	exe, err := os.Executable()
	if err != nil {
		return withCode(ExitImage, fmt.Errorf("finding the imgbake executable: %w", err))
	}
	args := []string{"session", "serve", "--name", name, "--dir", dir, "--verbose",
		"--idle-timeout", c.Duration("idle-timeout").String()}
	for _, d := range disks {
		args = append(args, "--add", d.Path)
	}
	if f := c.String("format"); f != "" {
		args = append(args, "--format", f)
	}
	for _, m := range c.StringSlice("mount") {
		args = append(args, "--mount", m)
	}
	if c.Bool("allow-backing") {
		args = append(args, "--allow-backing")
	}
	if k := c.String("kernel"); k != "" {
		if k, err = filepath.Abs(k); err != nil {
			return err
		}
		args = append(args, "--kernel", k)
	}
	args = append(args, "--memory", strconv.Itoa(c.Int("memory")))
	if c.Bool("network") {
		args = append(args, "--network")
	}
	if ownerID != "" {
		args = append(args, "--owner-pid", strconv.Itoa(c.Int("owner-pid")), "--owner-id", ownerID)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	defer pr.Close()
	cmd := exec.Command(exe, args...)
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.ExtraFiles = []*os.File{pw}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		pw.Close()
		return withCode(ExitImage, fmt.Errorf("starting the session process: %w", err))
	}
	pw.Close()
	exited := make(chan struct{})
	// Reaped here when imgbake lives on (tests run it in-process); a
	// command-line start exits and leaves the session to init.
	go func() { _ = cmd.Wait(); close(exited) }()
	reports := make(chan startReport, 1)
	go func() {
		var r startReport
		if err := json.NewDecoder(pr).Decode(&r); err != nil {
			r.Error = "the session process exited before it was ready"
			r.Code = ExitImage
		}
		reports <- r
	}()
	var r startReport
	select {
	case r = <-reports:
	case <-ctx.Done():
		// Interrupted while booting: the session goes too.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		return ctx.Err()
	}
	if r.Error != "" {
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		code := r.Code
		if code == 0 {
			code = ExitImage
		}
		msg := r.Error
		if tail := logTail(filepath.Join(base, name+".log"), filepath.Join(dir, sessLog)); tail != "" && strings.Contains(msg, "exited before") {
			msg += "; its log ends with:\n" + tail
		}
		return withCode(code, errors.New(msg))
	}
	fmt.Fprintln(stdio.Out, name)
	if c.Bool("verbose") {
		fmt.Fprintf(stdio.Err, "imgbake: session %s ready: %s\n", name, r.Boot)
	}
	return nil
}

func logTail(paths ...string) string {
	for _, p := range paths {
		if b, err := os.ReadFile(p); err == nil {
			return lastLinesOf(string(b), 8)
		}
	}
	return ""
}

// reuseSession waits for the running session name to be ready and checks
// it holds the same disks.
func reuseSession(ctx context.Context, stdio Stdio, base, name string, want []sessionDisk) error {
	deadline := time.Now().Add(5 * time.Minute)
	for {
		dir := filepath.Join(base, name)
		info, ierr := readSessionInfo(dir)
		if ierr == nil && !sameDisks(info.Disks, want) {
			return withCode(ExitUsage, fmt.Errorf("session %s is running on %s, not on %s", name, diskPaths(info.Disks), diskPaths(want)))
		}
		if ierr == nil && info.State == stateReady {
			res, err := callSession(ctx, name, sessionRequest{Op: "status"}, nil, io.Discard, io.Discard)
			if err == nil && res.Status != nil {
				fmt.Fprintln(stdio.Out, name)
				return nil
			}
		}
		if _, err := os.Stat(dir); err != nil {
			return withCode(ExitImage, fmt.Errorf("session %s failed to start (its log: %s)", name, filepath.Join(base, name+".log")))
		}
		if ierr == nil && !procAlive(info.ProcID) {
			scanSessions(base, nil)
			return withCode(ExitImage, fmt.Errorf("session %s is gone (its log: %s)", name, filepath.Join(base, name+".log")))
		}
		if time.Now().After(deadline) {
			return withCode(ExitImage, fmt.Errorf("session %s did not become ready", name))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func sharesDisk(a, b []sessionDisk) bool { return sharedPath(a, b) != "" }

func sharedPath(a, b []sessionDisk) string {
	for _, x := range a {
		for _, y := range b {
			if x.Dev == y.Dev && x.Ino == y.Ino {
				return y.Path
			}
		}
	}
	return ""
}

func sameDisks(a, b []sessionDisk) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Dev != b[i].Dev || a[i].Ino != b[i].Ino {
			return false
		}
	}
	return true
}

func diskPaths(ds []sessionDisk) string {
	var p []string
	for _, d := range ds {
		p = append(p, d.Path)
	}
	return strings.Join(p, ", ")
}

// defaultSessionName derives a free name from the disk's file name.
func defaultSessionName(base, disk string) string {
	n := strings.TrimSuffix(filepath.Base(disk), filepath.Ext(disk))
	n = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-' {
			return r
		}
		return '-'
	}, n)
	n = strings.TrimLeft(n, ".-_")
	if len(n) > 40 {
		n = n[:40]
	}
	if n == "" {
		n = "disk"
	}
	name := n
	for i := 2; ; i++ {
		if _, err := os.Lstat(filepath.Join(base, name)); err != nil {
			return name
		}
		name = fmt.Sprintf("%s-%d", n, i)
	}
}

func sessionExecCommand() *cli.Command {
	return &cli.Command{
		Name:      "exec",
		Usage:     "run a command inside the session's image: stdin, stdout, stderr and the exit status pass through",
		ArgsUsage: "NAME -- COMMAND [ARG...]",
		Description: "Flags go before NAME. Standard input is sent to the command until it ends (unless -n, or\n" +
			"when it is a terminal: use `imgbake shell` for interactive work). The exit status is the\n" +
			"command's; 255 means the session itself failed, 127 that the command could not be started.",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "env", Aliases: []string{"e"}, Usage: "set `NAME=VALUE` in the command's environment (repeatable)"},
			&cli.StringFlag{Name: "cwd", Usage: "working `DIR` inside the image (default /)"},
			&cli.DurationFlag{Name: "timeout", Usage: "kill the command after this long"},
			&cli.BoolFlag{Name: "no-stdin", Aliases: []string{"n"}, Usage: "do not send standard input"},
		},
		Action: func(c *cli.Context) error { return sessionExec(c, sessionStdio(c)) },
	}
}

func sessionExec(c *cli.Context, stdio Stdio) error {
	args := c.Args().Slice()
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) < 2 {
		return usageErr("session exec: expected NAME -- COMMAND [ARG...]")
	}
	name, argv := args[0], args[1:]
	if argv[0] == "--" {
		argv = argv[1:]
	}
	if len(argv) == 0 {
		return usageErr("session exec: no command after %s", name)
	}
	req := sessionRequest{Op: "exec", Argv: argv, Env: c.StringSlice("env"), Dir: c.String("cwd"), TimeoutMS: c.Duration("timeout").Milliseconds()}
	var in io.Reader
	if !c.Bool("no-stdin") && !isTerminal(stdio.In) {
		in = stdio.In
	}
	res, err := callSession(c.Context, name, req, in, stdio.Out, stdio.Err)
	if err != nil {
		if c.Context.Err() != nil {
			return c.Context.Err()
		}
		return withCode(ExitSession, fmt.Errorf("session %s: %w", name, err))
	}
	if res.Error != "" {
		return withCode(res.Code, fmt.Errorf("session %s: %s", name, res.Error))
	}
	if res.TimedOut {
		fmt.Fprintf(stdio.Err, "imgbake: session %s: the command timed out after %s and was killed\n", name, c.Duration("timeout"))
	}
	if res.RC != 0 {
		return withCode(res.RC, errReported)
	}
	return nil
}

func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// sessionResultErr turns a failed result into the command's error.
func sessionResultErr(name string, res sessionResult, err error) error {
	if err != nil {
		code := ExitImage
		if errors.Is(err, errNoSession) {
			code = ExitUsage
		}
		var ee *exitError
		if errors.As(err, &ee) {
			return err
		}
		return withCode(code, fmt.Errorf("session %s: %w", name, err))
	}
	if res.Error != "" {
		code := res.Code
		if code == 0 {
			code = ExitImage
		}
		return withCode(code, fmt.Errorf("session %s: %s", name, res.Error))
	}
	if res.RC != 0 {
		return withCode(res.RC, errReported)
	}
	return nil
}

func sessionPutCommand() *cli.Command {
	return &cli.Command{
		Name:      "put",
		Usage:     "copy a host file or directory into the session's image (HOSTPATH - reads standard input)",
		ArgsUsage: "NAME HOSTPATH IMAGEPATH",
		Description: "Like cp: a directory, or a file put onto an existing directory (or a path ending in /),\n" +
			"lands inside it with its own name; otherwise IMAGEPATH is the file written. With --exact\n" +
			"IMAGEPATH is always the file itself. Files are written atomically.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "exact", Usage: "IMAGEPATH names the file itself, never a directory to put it into"},
			&cli.StringFlag{Name: "mode", Usage: "octal `MODE` of the file written (default: kept, or the source's)"},
			&cli.StringFlag{Name: "owner", Usage: "`USER[:GROUP]` of the file written, resolved in the image"},
		},
		Action: func(c *cli.Context) error {
			stdio := sessionStdio(c)
			if c.NArg() != 3 {
				return usageErr("session put: expected NAME HOSTPATH IMAGEPATH")
			}
			name, host, img := c.Args().Get(0), c.Args().Get(1), c.Args().Get(2)
			if !strings.HasPrefix(img, "/") {
				return usageErr("session put: %s: image paths must be absolute", img)
			}
			req := sessionRequest{Op: "put", Image: img, Exact: c.Bool("exact"), Owner: c.String("owner")}
			if m := c.String("mode"); m != "" {
				mode, err := parseUnixMode(m)
				if err != nil {
					return err
				}
				req.Mode = &mode
			}
			var in io.Reader
			if host == "-" {
				in = stdio.In
			} else {
				abs, err := filepath.Abs(host)
				if err != nil {
					return err
				}
				if _, err := os.Stat(abs); err != nil {
					return withCode(ExitUsage, err)
				}
				req.Host = abs
			}
			res, err := callSession(c.Context, name, req, in, stdio.Out, stdio.Err)
			return sessionResultErr(name, res, err)
		},
	}
}

func sessionFetchCommand() *cli.Command {
	return &cli.Command{
		Name:      "fetch",
		Usage:     "copy a file or directory out of the session's image (HOSTPATH - writes a file to standard output)",
		ArgsUsage: "NAME IMAGEPATH HOSTPATH",
		Description: "Like cp: a directory, or a file fetched onto an existing host directory (or a path ending\n" +
			"in /), lands inside it with its own name; otherwise HOSTPATH is the file written (atomically,\n" +
			"mode 0644). With --exact HOSTPATH is always the file itself. Nothing from the image is ever\n" +
			"written outside HOSTPATH, symlinks in the image are not followed on the host and setuid\n" +
			"bits are dropped.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "exact", Usage: "HOSTPATH names the file itself, never a directory to put it into"},
		},
		Action: func(c *cli.Context) error {
			stdio := sessionStdio(c)
			if c.NArg() != 3 {
				return usageErr("session fetch: expected NAME IMAGEPATH HOSTPATH")
			}
			name, img, host := c.Args().Get(0), c.Args().Get(1), c.Args().Get(2)
			if !strings.HasPrefix(img, "/") {
				return usageErr("session fetch: %s: image paths must be absolute", img)
			}
			req := sessionRequest{Op: "fetch", Image: img, Exact: c.Bool("exact")}
			if host != "-" {
				abs, err := filepath.Abs(host)
				if err != nil {
					return err
				}
				req.Host = abs
				if strings.HasSuffix(host, "/") {
					req.Host += "/"
				}
			}
			res, err := callSession(c.Context, name, req, nil, stdio.Out, stdio.Err)
			return sessionResultErr(name, res, err)
		},
	}
}

func sessionRunCommand() *cli.Command {
	return &cli.Command{
		Name:      "run",
		Usage:     "apply a recipe to the session's image (no new boot)",
		ArgsUsage: "NAME RECIPE.yaml",
		Description: "As `imgbake run`, on the session's appliance. A failed step stops the recipe; what the\n" +
			"steps before it did stays in the session until `session stop` (or --discard).",
		Flags: append([]cli.Flag{
			&cli.BoolFlag{Name: "force", Usage: "run every step even if the image records this recipe as applied"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON event per line"},
			&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "stream commands' output"},
		}, varFlags()...),
		Action: func(c *cli.Context) error {
			stdio := sessionStdio(c)
			if c.NArg() != 2 {
				return usageErr("session run: expected NAME RECIPE.yaml")
			}
			name, recipe := c.Args().Get(0), c.Args().Get(1)
			abs, err := filepath.Abs(recipe)
			if err != nil {
				return err
			}
			req := sessionRequest{Op: "run", Recipe: abs, Vars: c.StringSlice("var"), Force: c.Bool("force"), JSON: c.Bool("json"), Verbose: c.Bool("verbose")}
			if f := c.String("vars-file"); f != "" {
				if req.VarsFile, err = filepath.Abs(f); err != nil {
					return err
				}
			}
			// Validate here first: a bad recipe is exit 2 and touches nothing.
			vars, err := sessionRecipeVars(req.VarsFile, req.Vars)
			if err != nil {
				return err
			}
			if _, err := recipes.Load(abs, recipes.WithVars(vars)); err != nil {
				return withCode(ExitUsage, err)
			}
			res, err := callSession(c.Context, name, req, nil, stdio.Out, stdio.Err)
			return sessionResultErr(name, res, err)
		},
	}
}

func sessionListCommand() *cli.Command {
	return &cli.Command{
		Name:  "list",
		Usage: "list the running sessions",
		Flags: []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "one JSON array"}},
		Action: func(c *cli.Context) error {
			stdio := sessionStdio(c)
			base, err := sessionsBase()
			if err != nil {
				return withCode(ExitImage, err)
			}
			var list []sessionStatus
			for _, s := range scanSessions(base, func(name string, info sessionInfo) {
				fmt.Fprintf(stdio.Err, "imgbake: removed session %s: its process (pid %d) is gone and its changes with it (log: %s)\n",
					name, info.PID, filepath.Join(base, name+".log"))
			}) {
				st := sessionStatus{Name: s.info.Name, PID: s.info.PID, State: s.info.State, Started: s.info.Started,
					IdleTimeout: s.info.IdleTimeout, OwnerPID: s.info.OwnerPID, Network: s.info.Network, IdleMS: -1}
				for _, d := range s.info.Disks {
					st.Disks = append(st.Disks, d.Path)
				}
				if s.info.State == stateReady {
					ctx, cancel := context.WithTimeout(c.Context, 3*time.Second)
					res, err := callSession(ctx, s.info.Name, sessionRequest{Op: "status"}, nil, io.Discard, io.Discard)
					cancel()
					if err == nil && res.Status != nil {
						st = *res.Status
					}
				}
				list = append(list, st)
			}
			if c.Bool("json") {
				if list == nil {
					list = []sessionStatus{}
				}
				enc := json.NewEncoder(stdio.Out)
				enc.SetIndent("", "  ")
				return enc.Encode(list)
			}
			if len(list) == 0 {
				fmt.Fprintln(stdio.Err, "no sessions")
				return nil
			}
			tw := tabwriter.NewWriter(stdio.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tPID\tSTATE\tAGE\tIDLE\tREQUESTS\tOWNER\tDISK")
			for _, s := range list {
				idle := "-"
				if s.IdleMS >= 0 && s.State == stateReady {
					idle = (time.Duration(s.IdleMS) * time.Millisecond).Round(time.Second).String()
					if s.Active > 0 {
						idle = "busy"
					}
				}
				owner := "-"
				if s.OwnerPID != 0 {
					owner = strconv.Itoa(s.OwnerPID)
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%d\t%s\t%s\n", s.Name, s.PID, s.State,
					time.Since(s.Started).Round(time.Second), idle, s.Requests, owner, strings.Join(s.Disks, ","))
			}
			return tw.Flush()
		},
	}
}

func sessionStopCommand() *cli.Command {
	return &cli.Command{
		Name:      "stop",
		Usage:     "shut the session's appliance down and commit its changes into the image (--discard: drop them)",
		ArgsUsage: "NAME",
		Flags:     []cli.Flag{&cli.BoolFlag{Name: "discard", Usage: "drop every change: the image stays byte-identical"}},
		Action: func(c *cli.Context) error {
			stdio := sessionStdio(c)
			if c.NArg() != 1 {
				return usageErr("session stop: expected NAME")
			}
			name := c.Args().First()
			// The commit must finish even if we are interrupted now.
			res, err := callSession(context.WithoutCancel(c.Context), name, sessionRequest{Op: "stop", Discard: c.Bool("discard")}, nil, stdio.Out, stdio.Err)
			if err == nil && res.Error == "" {
				fmt.Fprintf(stdio.Err, "imgbake: session %s: %s\n", name, res.Detail)
			}
			return sessionResultErr(name, res, err)
		},
	}
}
