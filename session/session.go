// Package session keeps one disk image open in one booted appliance across
// many commands. Start spawns the daemon (`imgbake session serve`) and
// waits for it to be ready; Serve is the daemon: it opens the image with
// bake.Open, answers requests on its control socket (exec, put, fetch,
// run with bake's Apply, status, stop) and ends by committing or
// discarding; Dial, Call, Exec, Run, Stop and List are the client. The
// wire protocol and the session directory's files are in package
// session/api.
//
// The starter hands the daemon its options the way Lima's limactl hands
// its host agent an instance directory: it writes them, complete, as
// config.json (0600) in the session's private directory and runs
// `imgbake session serve --dir DIR`, which reads that file instead of
// parsing disk flags again.
//
// Errors carry bake's classification or an explicit exit code
// (bake.ExitCode).
package session

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/imgbake/imgbake/appliance"
	"github.com/imgbake/imgbake/bake"
	"github.com/imgbake/imgbake/session/api"
)

// Config is everything a session's daemon is asked to do. Start writes it
// as config.json in the session's directory; `session serve --dir DIR`
// reads it back (ReadConfig) and passes it to Serve.
type Config struct {
	Name  string   `json:"name"`
	Disks []string `json:"disks"` // absolute paths
	// Options open the disks, as the starter's command line gave them
	// (--format, -m, --kernel, --memory, --cold, --network ...).
	Options     bake.Options  `json:"options"`
	IdleTimeout time.Duration `json:"idle_timeout_ns"` // stop and discard after this long without a request; 0: never
	OwnerPID    int           `json:"owner_pid,omitempty"`
	OwnerID     string        `json:"owner_id,omitempty"` // appliance.ProcessID of the owner: a reused pid is not the owner
	ReadyFD     int           `json:"ready_fd,omitempty"` // descriptor for the one api.Report; 0: none

	Dir string    `json:"-"` // the session's directory, BASE/NAME (ReadConfig sets it)
	Log io.Writer `json:"-"` // the session log; nil is stderr, which Start points at the log file
}

// WriteConfig writes cfg as dir's config.json, readable by this user only.
func WriteConfig(dir string, cfg Config) error {
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, ".config.tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("writing the session config: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, api.ConfigFile)); err != nil {
		return fmt.Errorf("writing the session config: %w", err)
	}
	return nil
}

// ReadConfig reads the config.json of the session directory dir, which
// must be private.
func ReadConfig(dir string) (Config, error) {
	var cfg Config
	if err := api.CheckPrivate(dir); err != nil {
		return cfg, err
	}
	b, err := os.ReadFile(filepath.Join(dir, api.ConfigFile))
	if err != nil {
		return cfg, fmt.Errorf("reading the session config: %w", err)
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return cfg, fmt.Errorf("%s: %w", filepath.Join(dir, api.ConfigFile), err)
	}
	cfg.Dir = dir
	return cfg, nil
}

// Entry is a session directory found under the base.
type Entry struct {
	Dir  string
	Info api.Info
}

// Scan lists the sessions under base. Directories whose process is gone
// (killed outright) are removed, keeping their log as NAME.log, and
// reported through removed (which may be nil).
func Scan(base string, removed func(name string, info api.Info)) []Entry {
	ents, err := os.ReadDir(base)
	if err != nil {
		return nil
	}
	var out []Entry
	for _, e := range ents {
		if !e.IsDir() || !api.ValidName(e.Name()) {
			continue
		}
		dir := filepath.Join(base, e.Name())
		info, err := api.ReadInfo(dir)
		if err != nil {
			// Being created right now, or left by a start that died
			// before writing anything.
			if fi, serr := os.Stat(dir); serr == nil && time.Since(fi.ModTime()) > 30*time.Second {
				removeDir(base, e.Name())
				if removed != nil {
					removed(e.Name(), info)
				}
			}
			continue
		}
		if !procAlive(info.ProcID) {
			// Check again: the daemon may have just replaced a starting
			// info.json with its own.
			if info2, err := api.ReadInfo(dir); err == nil && info2.ProcID != info.ProcID && procAlive(info2.ProcID) {
				out = append(out, Entry{Dir: dir, Info: info2})
				continue
			}
			removeDir(base, e.Name())
			if removed != nil {
				removed(e.Name(), info)
			}
			continue
		}
		out = append(out, Entry{Dir: dir, Info: info})
	}
	return out
}

// removeDir deletes a session's directory, keeping its log as
// BASE/NAME.log for later reading.
func removeDir(base, name string) {
	dir := filepath.Join(base, name)
	_ = os.Rename(filepath.Join(dir, api.LogFile), api.KeptLog(base, name))
	_ = os.RemoveAll(dir)
}

// procAlive reports whether the process an appliance.ProcessID names is
// still that process.
func procAlive(id string) bool {
	pid, _, _ := strings.Cut(id, " ")
	n, err := strconv.Atoi(pid)
	if err != nil || n <= 0 {
		return false
	}
	cur, err := appliance.ProcessID(n)
	return err == nil && cur == id
}

func usageErr(format string, args ...any) error {
	return bake.Classify(bake.ErrUsage, fmt.Errorf(format, args...))
}

func imageErr(format string, args ...any) error {
	return bake.Classify(bake.ErrImage, fmt.Errorf(format, args...))
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// logTail is the end of the first of paths that can be read.
func logTail(paths ...string) string {
	for _, p := range paths {
		if b, err := os.ReadFile(p); err == nil {
			return lastLines(string(b), 8)
		}
	}
	return ""
}
