package fsops

import (
	"context"
	"fmt"
	"path"
	"slices"
	"strings"
)

// Offline systemd unit management, the way `systemctl --root` does it:
// enabling creates the symlinks the unit's [Install] section asks for under
// /etc/systemd/system, disabling removes every symlink to the unit there,
// masking links /etc/systemd/system/NAME to /dev/null. No systemd binary
// is needed in the image.

const systemdEtc = "/etc/systemd/system"

// unitDirs is where unit files are looked up, in systemd's order of
// precedence (without /run, which is empty offline).
var unitDirs = []string{systemdEtc, "/usr/local/lib/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system"}

// installSection is the part of a unit file that says how to enable it.
type installSection struct {
	WantedBy, RequiredBy, UpheldBy, Alias, Also []string
	DefaultInstance                             string
}

// parseInstall reads the [Install] section of a unit file.
func parseInstall(unit string) installSection {
	var in installSection
	section := ""
	var logical []string
	var cont strings.Builder
	for line := range strings.Lines(unit) {
		line = strings.TrimRight(line, "\r\n")
		if strings.HasSuffix(line, "\\") {
			cont.WriteString(strings.TrimSuffix(line, "\\") + " ")
			continue
		}
		cont.WriteString(line)
		logical = append(logical, cont.String())
		cont.Reset()
	}
	if cont.Len() > 0 {
		logical = append(logical, cont.String())
	}
	for _, line := range logical {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if line[0] == '[' {
			section = strings.Trim(line, "[] ")
			continue
		}
		if section != "Install" {
			continue
		}
		key, val, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		var list *[]string
		switch key {
		case "WantedBy":
			list = &in.WantedBy
		case "RequiredBy":
			list = &in.RequiredBy
		case "UpheldBy":
			list = &in.UpheldBy
		case "Alias":
			list = &in.Alias
		case "Also":
			list = &in.Also
		case "DefaultInstance":
			in.DefaultInstance = val
			continue
		default:
			continue
		}
		if val == "" {
			*list = nil // an empty assignment resets the list
			continue
		}
		*list = append(*list, strings.Fields(val)...)
	}
	return in
}

func (in installSection) empty() bool {
	return len(in.WantedBy)+len(in.RequiredBy)+len(in.UpheldBy)+len(in.Alias)+len(in.Also) == 0
}

// splitTemplate splits "foo@bar.service" into "foo@.service" and "bar".
// A unit that is not a template instance comes back unchanged.
func splitTemplate(name string) (template, instance string, ok bool) {
	at := strings.IndexByte(name, '@')
	dot := strings.LastIndexByte(name, '.')
	if at < 0 || dot < at {
		return name, "", false
	}
	return name[:at+1] + name[dot:], name[at+1 : dot], true
}

// findUnit returns the path of the unit file for name (for a template
// instance, of its template) and whether it is masked.
func findUnit(ctx context.Context, s Session, name string) (file string, masked bool, err error) {
	lookup := []string{name}
	if tmpl, inst, ok := splitTemplate(name); ok && inst != "" {
		lookup = append(lookup, tmpl)
	}
	for _, n := range lookup {
		for _, dir := range unitDirs {
			p := dir + "/" + n
			st, err := lstat(ctx, s, p)
			if err != nil {
				return "", false, err
			}
			if !st.Exists {
				continue
			}
			if isSymlink(st) && st.Target == "/dev/null" {
				return p, true, nil
			}
			return p, false, nil
		}
	}
	return "", false, nil
}

// ServiceSpec says what to do with a unit; nil fields are left alone.
type ServiceSpec struct {
	Name    string // full unit name, e.g. "ssh.service"
	Enabled *bool
	Masked  *bool
}

// Service applies spec offline: unmask, then enable or disable, then mask.
// On an OpenRC image (see usesOpenRC) the service's runlevel links are
// managed instead.
func Service(ctx context.Context, s Session, spec ServiceSpec) (Result, error) {
	if openrc, err := usesOpenRC(ctx, s); err != nil {
		return Result{}, err
	} else if openrc {
		return openrcService(ctx, s, spec)
	}
	var res Result
	var details []string
	if spec.Masked != nil && !*spec.Masked {
		r, err := unmaskUnit(ctx, s, spec.Name)
		if err != nil {
			return res, err
		}
		res.merge(r)
		if r.Changed {
			details = append(details, "unmasked")
		}
	}
	if spec.Enabled != nil {
		var r Result
		var err error
		if *spec.Enabled {
			r, err = EnableUnit(ctx, s, spec.Name)
		} else {
			r, err = disableUnit(ctx, s, spec.Name)
		}
		if err != nil {
			return res, err
		}
		res.merge(r)
		details = append(details, r.Detail)
	}
	if spec.Masked != nil && *spec.Masked {
		r, err := maskUnit(ctx, s, spec.Name)
		if err != nil {
			return res, err
		}
		res.merge(r)
		if r.Changed {
			details = append(details, "masked")
		}
	}
	res.Detail = joinDetail(details...)
	return res, nil
}

// EnableUnit creates the symlinks of the unit's [Install] section (and
// enables the units its Also= names).
func EnableUnit(ctx context.Context, s Session, name string) (Result, error) {
	var res Result
	var links []string
	static, err := enableUnit(ctx, s, name, map[string]bool{}, &res, &links)
	if err != nil {
		return res, err
	}
	switch {
	case len(links) > 0:
		res.Detail = "enabled: " + strings.Join(links, ", ")
	case static:
		res.Detail = name + " has no [Install] section (static): nothing to enable"
	}
	return res, nil
}

func enableUnit(ctx context.Context, s Session, name string, seen map[string]bool, res *Result, links *[]string) (static bool, err error) {
	if seen[name] {
		return false, nil
	}
	seen[name] = true
	file, masked, err := findUnit(ctx, s, name)
	if err != nil {
		return false, err
	}
	if file == "" {
		return false, fmt.Errorf("unit %s not found in the image (looked in %s)", name, strings.Join(unitDirs, ", "))
	}
	if masked {
		return false, fmt.Errorf("unit %s is masked (%s -> /dev/null); set masked: false to enable it", name, file)
	}
	data, err := ReadFile(ctx, s, file, 1<<20)
	if err != nil {
		return false, err
	}
	in := parseInstall(string(data))
	if in.empty() {
		return true, nil
	}
	linkName := name
	if tmpl, inst, ok := splitTemplate(name); ok && inst == "" {
		if in.DefaultInstance == "" {
			return false, fmt.Errorf("%s is a template without DefaultInstance=; name an instance, e.g. %s", name, strings.Replace(tmpl, "@.", "@INSTANCE.", 1))
		}
		linkName = strings.Replace(tmpl, "@.", "@"+in.DefaultInstance+".", 1)
	}
	want := []string{}
	for _, t := range in.WantedBy {
		want = append(want, path.Join(systemdEtc, t+".wants", linkName))
	}
	for _, t := range in.RequiredBy {
		want = append(want, path.Join(systemdEtc, t+".requires", linkName))
	}
	for _, t := range in.UpheldBy {
		want = append(want, path.Join(systemdEtc, t+".upholds", linkName))
	}
	for _, a := range in.Alias {
		want = append(want, path.Join(systemdEtc, a))
	}
	for _, link := range want {
		if strings.Contains(strings.TrimPrefix(link, systemdEtc+"/"), "%") {
			return false, fmt.Errorf("%s: [Install] uses specifiers (%s); enable it with systemctl instead", file, link)
		}
		st, err := lstat(ctx, s, link)
		if err != nil {
			return false, err
		}
		if isSymlink(st) && path.Base(st.Target) == path.Base(file) && st.Target != "/dev/null" {
			continue // already enabled (the target may be spelled /lib or /usr/lib)
		}
		if st.Exists && !isSymlink(st) {
			return false, fmt.Errorf("%s exists and is not a symlink; not replacing it", link)
		}
		if file == link {
			continue // an alias that is the unit file itself
		}
		if _, err := Mkdir(ctx, s, path.Dir(link), WriteOptions{}); err != nil {
			return false, err
		}
		if r, err := symlink(ctx, s, file, link); err != nil {
			return false, withStderr(err, r)
		}
		res.Changed = true
		*links = append(*links, strings.TrimPrefix(link, systemdEtc+"/"))
	}
	for _, also := range in.Also {
		if _, err := enableUnit(ctx, s, also, seen, res, links); err != nil {
			return false, err
		}
	}
	return false, nil
}

// disableUnit removes every symlink named like the unit (and its aliases)
// from /etc/systemd/system and its .wants/.requires/.upholds directories.
func disableUnit(ctx context.Context, s Session, name string) (Result, error) {
	names := []string{name}
	if file, masked, err := findUnit(ctx, s, name); err != nil {
		return Result{}, err
	} else if file != "" && !masked {
		data, err := ReadFile(ctx, s, file, 1<<20)
		if err != nil {
			return Result{}, err
		}
		in := parseInstall(string(data))
		names = append(names, in.Alias...)
		if tmpl, inst, ok := splitTemplate(name); ok && inst == "" && in.DefaultInstance != "" {
			names = append(names, strings.Replace(tmpl, "@.", "@"+in.DefaultInstance+".", 1))
		}
	}
	top, err := listDir(ctx, s, systemdEtc)
	if err != nil {
		return Result{}, err
	}
	var candidates []string
	for _, e := range top {
		if slices.Contains(names[1:], e) {
			candidates = append(candidates, path.Join(systemdEtc, e)) // alias
		}
		if strings.HasSuffix(e, ".wants") || strings.HasSuffix(e, ".requires") || strings.HasSuffix(e, ".upholds") {
			sub, err := listDir(ctx, s, path.Join(systemdEtc, e))
			if err != nil {
				return Result{}, err
			}
			for _, n := range sub {
				if slices.Contains(names, n) {
					candidates = append(candidates, path.Join(systemdEtc, e, n))
				}
			}
		}
	}
	var res Result
	var removed []string
	for _, c := range candidates {
		st, err := lstat(ctx, s, c)
		if err != nil {
			return res, err
		}
		if !isSymlink(st) || st.Target == "/dev/null" {
			continue
		}
		if _, err := Delete(ctx, s, c); err != nil {
			return res, err
		}
		res.Changed = true
		removed = append(removed, strings.TrimPrefix(c, systemdEtc+"/"))
	}
	if len(removed) > 0 {
		res.Detail = "disabled: removed " + strings.Join(removed, ", ")
	}
	return res, nil
}

// maskUnit links /etc/systemd/system/NAME to /dev/null.
func maskUnit(ctx context.Context, s Session, name string) (Result, error) {
	p := path.Join(systemdEtc, name)
	st, err := lstat(ctx, s, p)
	if err != nil {
		return Result{}, err
	}
	switch {
	case isSymlink(st) && st.Target == "/dev/null":
		return Result{}, nil
	case st.Exists && !isSymlink(st):
		return Result{}, fmt.Errorf("%s is a unit file, not a link; not masking over it", p)
	}
	if _, err := Mkdir(ctx, s, systemdEtc, WriteOptions{}); err != nil {
		return Result{}, err
	}
	if r, err := symlink(ctx, s, "/dev/null", p); err != nil {
		return Result{}, withStderr(err, r)
	}
	return Result{Changed: true}, nil
}

// unmaskUnit removes a /dev/null link at /etc/systemd/system/NAME.
func unmaskUnit(ctx context.Context, s Session, name string) (Result, error) {
	p := path.Join(systemdEtc, name)
	st, err := lstat(ctx, s, p)
	if err != nil || !isSymlink(st) || st.Target != "/dev/null" {
		return Result{}, err
	}
	return Delete(ctx, s, p)
}

// withStderr adds the last line of a command's stderr to err.
func withStderr(err error, r Result) error {
	if line := strings.TrimSpace(r.Stderr); line != "" {
		if i := strings.LastIndexByte(line, '\n'); i >= 0 {
			line = line[i+1:]
		}
		return fmt.Errorf("%w: %s", err, line)
	}
	return err
}
