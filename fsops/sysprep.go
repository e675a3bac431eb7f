package fsops

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"syscall"

	"github.com/imgbake/imgbake/internal/suggest"
)

// Sysprep, in the manner of virt-sysprep: remove what makes an image one
// particular machine (IDs, keys, logs, caches, leases, histories) so that
// every clone starts as a new one. Operations carry virt-sysprep's names
// where it has the operation, so --operations lists carry over.
//
// Paths are found by listing directories through the agent, never by a
// shell in the image, so sysprep works on an image whose shell is broken.
// The agent resolves every path inside the image's root; a final symlink
// is never followed (removing a link removes the link) and directory walks
// never descend into symlinks.

// SysprepOperation is one kind of trace sysprep removes.
type SysprepOperation struct {
	Name        string // e.g. "ssh-hostkeys"
	Description string // one line, for --list-operations and the README
	Default     bool   // in the default set; the others are opt-in
	run         func(ctx context.Context, r *sysprepRun) error
}

// SysprepOperations is the operations table, sorted by name, which is
// also the order they run in. The step, the command, --list-operations
// and the README's table all read it.
var SysprepOperations = []SysprepOperation{
	{Name: "bash-history", Default: true, run: historyOperation(".bash_history"),
		Description: "Remove the bash history (~/.bash_history) of every user: /root, /home/* and each login user's home in /etc/passwd"},
	{Name: "cloud-init-state", Default: true, run: sysprepCloudInit,
		Description: "Remove cloud-init's state (/var/lib/cloud/* except seed/, as cloud-init clean), so it runs again as on a new instance"},
	{Name: "cron-spool", run: sysprepCronSpool,
		Description: "Remove users' crontabs and at jobs (/var/spool/cron, /var/spool/at*) and reset at's job counter (not by default: jobs may belong to the image)"},
	{Name: "dbus-machine-id", Default: true, run: sysprepDBusMachineID,
		Description: "Remove a copy of the machine ID at " + dbusMachineID + " (the usual symlink to /etc/machine-id stays)"},
	{Name: "dhcp-client-state", Default: true, run: removeGlobs(dhcpLeaseGlobs...),
		Description: "Remove DHCP client leases (dhclient, dhcpcd, NetworkManager, wicked)"},
	{Name: "etc-hosts", Default: true, run: sysprepEtcHosts,
		Description: "Remove the old hostname (from /etc/hostname; also NAME.anything) from /etc/hosts; a line left without names goes"},
	{Name: "imgbake-state", run: removeGlobs(StatePath),
		Description: "Remove imgbake's run-once record (" + StatePath + "), so every recipe applies again"},
	{Name: "logfiles", Default: true, run: sysprepLogfiles,
		Description: "Empty the log files under /var/log (the files stay, mode and owner kept); remove rotated logs and the systemd journal"},
	{Name: "lvm-system-devices", Default: true, run: removeGlobs("/etc/lvm/devices/system.devices"),
		Description: "Remove LVM's /etc/lvm/devices/system.devices (IDs of this machine's disks: a clone's differ)"},
	{Name: "machine-id", Default: true, run: sysprepMachineID,
		Description: "Empty /etc/machine-id so each clone makes its own at first boot (machine_id: uninitialized writes systemd's first-boot marker instead)"},
	{Name: "mail-spool", Default: true, run: removeGlobs("/var/spool/mail/*", "/var/mail/*"),
		Description: "Remove local mail (/var/mail/*, /var/spool/mail/*)"},
	{Name: "net-hwaddr", Default: true, run: sysprepNetHWAddr,
		Description: "Remove MAC address pinning: HWADDR= of ifcfg files, mac-address= of NetworkManager profiles, match: macaddress of netplan"},
	{Name: "package-lists", Default: true, run: filesUnder(packageListDirs...),
		Description: "Remove the package lists fetched from repositories (apt's /var/lib/apt/lists, pacman's sync databases); apt-get update fetches them again"},
	{Name: "package-manager-cache", Default: true, run: filesUnder(packageCacheDirs...),
		Description: "Remove downloaded packages and metadata caches of apt, dnf, yum, zypper, pacman and apk (files only: the directories stay)"},
	{Name: "random-seed", Default: true, run: removeGlobs(randomSeedFiles...),
		Description: "Remove the saved random seed (systemd's, Debian's urandom), so that clones do not share it"},
	{Name: "rpm-db", Default: true, run: removeGlobs("/var/lib/rpm/__db.*"),
		Description: "Remove host-specific RPM database files and locks (/var/lib/rpm/__db.*); rpm recreates them"},
	{Name: "shell-history", Default: true, run: historyOperation(otherHistories...),
		Description: "Remove the history of other shells and interactive tools of every user (ash, sh, ksh, tcsh, fish, python, less, mysql, psql, sqlite, node)"},
	{Name: "ssh-hostkeys", Default: true, run: sysprepSSHHostKeys,
		Description: "Remove the SSH host keys (/etc/ssh/*_host_*); when the image has sshd and ssh-keygen, ssh-keygen -A makes new ones at first boot"},
	{Name: "tmp-files", Default: true, run: removeGlobs("/tmp/*", "/var/tmp/*"),
		Description: "Remove everything in /tmp and /var/tmp"},
	{Name: "udev-persistent-net", Default: true, run: removeGlobs("/etc/udev/rules.d/70-persistent-net.rules"),
		Description: "Remove udev's persistent net rules (interface names pinned to MAC addresses)"},
	{Name: "zsh-history", Default: true, run: historyOperation(".zsh_history", ".zhistory"),
		Description: "Remove the zsh history (~/.zsh_history, ~/.zhistory) of every user"},
}

// What the machine-id operation leaves in /etc/machine-id.
const (
	MachineIDEmpty         = "empty"         // systemd makes a new ID at boot and commits it
	MachineIDUninitialized = "uninitialized" // systemd's marker: a new ID and first-boot semantics (ConditionFirstBoot)
)

// SysprepOptions say what Sysprep does.
type SysprepOptions struct {
	Operations []string // operation names (see ParseSysprepOperations); nil: the default set
	Keep       []string // absolute globs (path.Match) of paths no operation touches; a kept directory keeps all it holds
	MachineID  string   // MachineIDEmpty (also "") or MachineIDUninitialized
}

// SysprepResult is what Sysprep did.
type SysprepResult struct {
	Result                  // Changed: something was cleaned; Detail: every operation's summary
	Done   []SysprepOutcome // the operations that found something, in the order they ran
}

// SysprepOutcome is what one operation did, e.g. "3 removed, 2 truncated".
type SysprepOutcome struct {
	Operation string
	Summary   string
	Changed   bool // false when it only kept or left something
}

// LookupSysprepOperation returns the operation named name.
func LookupSysprepOperation(name string) (SysprepOperation, bool) {
	i := slices.IndexFunc(SysprepOperations, func(op SysprepOperation) bool { return op.Name == name })
	if i < 0 {
		return SysprepOperation{}, false
	}
	return SysprepOperations[i], true
}

// DefaultSysprepOperations names the default set.
func DefaultSysprepOperations() []string {
	var out []string
	for _, op := range SysprepOperations {
		if op.Default {
			out = append(out, op.Name)
		}
	}
	return out
}

// ParseSysprepOperations reads a selection the way virt-sysprep's
// --operations does: items apply in order to a set that starts empty;
// NAME or +NAME adds an operation, -NAME removes it, and "defaults" and
// "all" (also with + or -) stand for the default set and every operation.
// A selection that only removes (virt-sysprep would then do nothing) is an
// error that says to start from defaults. The names come back in the
// table's order.
func ParseSysprepOperations(items []string) ([]string, error) {
	set := map[string]bool{}
	added := false
	for _, raw := range items {
		item := strings.TrimSpace(raw)
		name, remove := strings.CutPrefix(item, "-")
		if !remove {
			name = strings.TrimPrefix(item, "+")
		}
		var names []string
		switch name {
		case "":
			return nil, fmt.Errorf("an empty operation name in %q (a stray comma?)", strings.Join(items, ","))
		case "defaults":
			names = DefaultSysprepOperations()
		case "all":
			for _, op := range SysprepOperations {
				names = append(names, op.Name)
			}
		default:
			if _, ok := LookupSysprepOperation(name); !ok {
				return nil, unknownSysprepOperation(name)
			}
			names = []string{name}
		}
		for _, n := range names {
			if remove {
				delete(set, n)
			} else {
				set[n] = true
			}
		}
		added = added || !remove
	}
	if !added {
		return nil, fmt.Errorf("%q only removes operations, and the selection starts empty: start from the defaults, e.g. defaults,%s",
			strings.Join(items, ","), strings.Join(items, ","))
	}
	var out []string
	for _, op := range SysprepOperations {
		if set[op.Name] {
			out = append(out, op.Name)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%q selects no operation", strings.Join(items, ","))
	}
	return out, nil
}

func unknownSysprepOperation(name string) error {
	names := make([]string, len(SysprepOperations))
	for i, op := range SysprepOperations {
		names[i] = op.Name
	}
	if best := suggest.Closest(name, names); best != "" {
		return fmt.Errorf("%q is not a sysprep operation; did you mean %q? (imgbake sysprep --list-operations lists them)", name, best)
	}
	return fmt.Errorf("%q is not a sysprep operation (imgbake sysprep --list-operations lists them)", name)
}

// CheckSysprepKeep validates one keep glob: absolute, and a valid
// path.Match pattern.
func CheckSysprepKeep(glob string) error {
	switch {
	case !strings.HasPrefix(glob, "/"):
		return fmt.Errorf("keep %q: must be an absolute path inside the image (a glob such as /var/log/app/*)", glob)
	case strings.IndexByte(glob, 0) >= 0:
		return fmt.Errorf("keep %q: contains a NUL byte", glob)
	}
	if _, err := path.Match(glob, ""); err != nil {
		return fmt.Errorf("keep %q: %w", glob, err)
	}
	return nil
}

// CheckSysprepMachineID validates SysprepOptions.MachineID.
func CheckSysprepMachineID(mode string) error {
	if mode != "" && mode != MachineIDEmpty && mode != MachineIDUninitialized {
		return fmt.Errorf("machine-id %q: want %s or %s", mode, MachineIDEmpty, MachineIDUninitialized)
	}
	return nil
}

// Sysprep runs the selected operations in table order. Each is idempotent:
// on an image with nothing left to clean, the result is unchanged. The
// first failing operation stops it with an error naming the operation.
func Sysprep(ctx context.Context, s Session, o SysprepOptions) (SysprepResult, error) {
	var res SysprepResult
	names := o.Operations
	if names == nil {
		names = DefaultSysprepOperations()
	}
	for _, n := range names {
		if _, ok := LookupSysprepOperation(n); !ok {
			return res, unknownSysprepOperation(n)
		}
	}
	for _, g := range o.Keep {
		if err := CheckSysprepKeep(g); err != nil {
			return res, err
		}
	}
	if err := CheckSysprepMachineID(o.MachineID); err != nil {
		return res, err
	}
	r := &sysprepRun{s: s, opts: o, keep: cleanGlobs(o.Keep), dirs: map[string][]DirEntry{}}
	var details []string
	for _, op := range SysprepOperations {
		if !slices.Contains(names, op.Name) {
			continue
		}
		r.tally = sysprepTally{}
		if err := op.run(ctx, r); err != nil {
			return res, fmt.Errorf("sysprep %s: %w", op.Name, err)
		}
		if sum := r.tally.summary(); sum != "" {
			res.Done = append(res.Done, SysprepOutcome{Operation: op.Name, Summary: sum, Changed: r.tally.changed})
			details = append(details, op.Name+": "+sum)
		}
		res.Changed = res.Changed || r.tally.changed
	}
	if !res.Changed {
		details = append([]string{fmt.Sprintf("nothing to clean (%d operations)", len(names))}, details...)
	}
	res.Detail = strings.Join(details, "; ")
	return res, nil
}

// sysprepRun is one Sysprep call: the session, the keep globs, a cache of
// the directories listed so far (the image changes only through this run,
// which keeps the cache current), and the current operation's tally.
type sysprepRun struct {
	s     Session
	opts  SysprepOptions
	keep  []string
	dirs  map[string][]DirEntry
	homes []string // computed once, for the history operations
	tally sysprepTally
}

// sysprepTally counts what one operation did.
type sysprepTally struct {
	changed                    bool
	removed, truncated, edited int
	notes                      []string // other changes, e.g. "emptied /etc/machine-id"
	kept                       int      // paths spared by keep
	unnamed                    int      // entries whose names are not UTF-8: paths cannot name them
	left                       []string // what was left on purpose, and why
}

// did records a change that is not a count, e.g. "emptied /etc/machine-id".
func (t *sysprepTally) did(format string, args ...any) {
	t.changed = true
	t.notes = append(t.notes, fmt.Sprintf(format, args...))
}

// leave records what was left on purpose, and why.
func (t *sysprepTally) leave(format string, args ...any) {
	t.left = append(t.left, fmt.Sprintf(format, args...))
}

func (t sysprepTally) summary() string {
	var parts []string
	for _, c := range []struct {
		n    int
		verb string
	}{{t.removed, "removed"}, {t.truncated, "truncated"}, {t.edited, "edited"}} {
		if c.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c.n, c.verb))
		}
	}
	parts = append(parts, t.notes...)
	if t.kept > 0 {
		parts = append(parts, fmt.Sprintf("%d kept", t.kept))
	}
	if t.unnamed > 0 {
		parts = append(parts, fmt.Sprintf("%d left (names not valid UTF-8)", t.unnamed))
	}
	parts = append(parts, t.left...)
	return strings.Join(parts, ", ")
}

// sysprepMatch is a path found by a glob or walk, with its lstat.
type sysprepMatch struct {
	path string
	DirEntry
}

func cleanGlobs(globs []string) []string {
	out := make([]string, len(globs))
	for i, g := range globs {
		out[i] = path.Clean(g)
	}
	return out
}

// segments splits a cleaned absolute path or glob: "/" has none.
func segments(p string) []string {
	if p == "/" {
		return nil
	}
	return strings.Split(strings.TrimPrefix(p, "/"), "/")
}

// kept reports whether a keep glob matches p or a directory holding it.
func (r *sysprepRun) kept(p string) bool {
	for _, g := range r.keep {
		for q := p; ; q = path.Dir(q) {
			if ok, _ := path.Match(g, q); ok {
				return true
			}
			if q == "/" {
				break
			}
		}
	}
	return false
}

// keptBelow reports whether a keep glob may match something inside dir,
// which therefore cannot be removed as a whole.
func (r *sysprepRun) keptBelow(dir string) bool {
	ds := segments(dir)
	for _, g := range r.keep {
		gs := segments(g)
		if len(gs) <= len(ds) {
			continue
		}
		match := true
		for i, d := range ds {
			if ok, _ := path.Match(gs[i], d); !ok {
				match = false
				break
			}
		}
		if match {
			return true
		}
	}
	return false
}

// readDir lists dir through the agent (symlinks on the way resolved inside
// the image), sorted by name; a missing directory, or something else than
// a directory, has no entries.
func (r *sysprepRun) readDir(ctx context.Context, dir string) ([]DirEntry, error) {
	if ents, ok := r.dirs[dir]; ok {
		return ents, nil
	}
	ents, err := r.s.ReadDir(ctx, dir)
	if err != nil {
		if !isNotExist(err) && !errors.Is(err, syscall.ENOTDIR) && !errors.Is(err, syscall.ELOOP) {
			return nil, err
		}
		ents = nil
	}
	slices.SortFunc(ents, func(a, b DirEntry) int { return strings.Compare(a.Name, b.Name) })
	r.dirs[dir] = ents
	return ents, nil
}

// forget drops p from the listing cache after it was removed.
func (r *sysprepRun) forget(p string) {
	parent, name := path.Split(p)
	parent = path.Clean(parent)
	r.dirs[parent] = slices.DeleteFunc(slices.Clone(r.dirs[parent]), func(e DirEntry) bool { return e.Name == name })
	for d := range r.dirs {
		if d == p || strings.HasPrefix(d, p+"/") {
			delete(r.dirs, d)
		}
	}
}

// glob expands an absolute pattern (path.Match per segment; * also
// matches names that start with a dot) by listing directories. Directories
// on the way may be symlinks (resolved inside the image); the matches are
// described by lstat.
func (r *sysprepRun) glob(ctx context.Context, pattern string) ([]sysprepMatch, error) {
	segs := segments(path.Clean(pattern))
	dirs := []string{"/"}
	var out []sysprepMatch
	for i, seg := range segs {
		last := i == len(segs)-1
		var next []string
		for _, dir := range dirs {
			ents, err := r.readDir(ctx, dir)
			if err != nil {
				return nil, err
			}
			for _, e := range ents {
				if ok, _ := path.Match(seg, e.Name); !ok || !e.Exists {
					continue
				}
				if e.RawName != nil {
					if last {
						r.tally.unnamed++
					}
					continue
				}
				p := path.Join(dir, e.Name)
				switch {
				case last:
					out = append(out, sysprepMatch{path: p, DirEntry: e})
				case isDir(e.StatResult) || isSymlink(e.StatResult):
					next = append(next, p)
				}
			}
		}
		dirs = next
	}
	return out, nil
}

// remove deletes m (a directory with everything in it) unless it is kept.
// A directory holding kept paths loses everything else and stays.
func (r *sysprepRun) remove(ctx context.Context, m sysprepMatch) error {
	if r.kept(m.path) {
		r.tally.kept++
		return nil
	}
	if isDir(m.StatResult) && r.keptBelow(m.path) {
		ents, err := r.readDir(ctx, m.path)
		if err != nil {
			return err
		}
		for _, e := range slices.Clone(ents) {
			if e.RawName != nil {
				r.tally.unnamed++
				continue
			}
			if err := r.remove(ctx, sysprepMatch{path: path.Join(m.path, e.Name), DirEntry: e}); err != nil {
				return err
			}
		}
		if len(r.dirs[m.path]) > 0 {
			return nil
		}
	}
	changed, err := r.s.Delete(ctx, m.path, true)
	if err != nil {
		return err
	}
	if changed {
		r.tally.removed++
		r.tally.changed = true
	}
	r.forget(m.path)
	return nil
}

// removeGlob removes every match of pattern.
func (r *sysprepRun) removeGlob(ctx context.Context, pattern string) error {
	ms, err := r.glob(ctx, pattern)
	if err != nil {
		return err
	}
	for _, m := range ms {
		if err := r.remove(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

// walk calls fn for every entry below dir that is not a directory, depth
// first in name order, never descending into a symlink. fn may remove the
// entry it is given.
func (r *sysprepRun) walk(ctx context.Context, dir string, fn func(sysprepMatch) error) error {
	return r.walkDepth(ctx, dir, 0, fn)
}

func (r *sysprepRun) walkDepth(ctx context.Context, dir string, depth int, fn func(sysprepMatch) error) error {
	if depth > maxListDepth {
		return fmt.Errorf("%s: %w", dir, ErrTooDeep)
	}
	ents, err := r.readDir(ctx, dir)
	if err != nil {
		return err
	}
	for _, e := range slices.Clone(ents) {
		if !e.Exists {
			continue
		}
		if e.RawName != nil {
			r.tally.unnamed++
			continue
		}
		m := sysprepMatch{path: path.Join(dir, e.Name), DirEntry: e}
		if isDir(e.StatResult) {
			err = r.walkDepth(ctx, m.path, depth+1, fn)
		} else {
			err = fn(m)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// truncate empties m in place when it is a non-empty regular file (never
// through a symlink) and not kept.
func (r *sysprepRun) truncate(ctx context.Context, m sysprepMatch) error {
	if !isRegular(m.StatResult) || m.Size == 0 {
		return nil
	}
	if r.kept(m.path) {
		r.tally.kept++
		return nil
	}
	changed, err := r.s.Truncate(ctx, m.path, false)
	if err != nil {
		return err
	}
	if changed {
		r.tally.truncated++
		r.tally.changed = true
	}
	return nil
}

// edit rewrites the regular file at p (never through a final symlink)
// with what fn makes of its content, keeping mode and owner, unless it is
// kept. fn returning the content unchanged writes nothing.
func (r *sysprepRun) edit(ctx context.Context, p string, fn func([]byte) ([]byte, error)) error {
	st, err := lstat(ctx, r.s, p)
	if err != nil || !isRegular(st) {
		return err
	}
	data, err := ReadFile(ctx, r.s, p, maxEditSize)
	if err != nil {
		return err
	}
	out, err := fn(data)
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	if string(out) == string(data) {
		return nil
	}
	if r.kept(p) {
		r.tally.kept++
		return nil
	}
	if _, err := WriteFile(ctx, r.s, p, strings.NewReader(string(out)), WriteOptions{}); err != nil {
		return err
	}
	r.tally.edited++
	r.tally.changed = true
	return nil
}

// removeGlobs is an operation that removes every match of its patterns.
func removeGlobs(patterns ...string) func(context.Context, *sysprepRun) error {
	return func(ctx context.Context, r *sysprepRun) error {
		for _, p := range patterns {
			if err := r.removeGlob(ctx, p); err != nil {
				return err
			}
		}
		return nil
	}
}

// filesUnder is an operation that removes every file below its directories
// and keeps the directories (packages expect their cache layout), apart
// from lock files, which are empty and belong to the layout too.
func filesUnder(dirs ...string) func(context.Context, *sysprepRun) error {
	return func(ctx context.Context, r *sysprepRun) error {
		for _, d := range dirs {
			err := r.walk(ctx, d, func(m sysprepMatch) error {
				if m.Name == "lock" {
					return nil
				}
				return r.remove(ctx, m)
			})
			if err != nil {
				return err
			}
		}
		return nil
	}
}
