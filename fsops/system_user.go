package fsops

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/imgbake/imgbake/appliance/passwd"
)

// UserSpec is what a user should look like. Zero fields are left alone
// (a new user gets useradd's defaults for them).
type UserSpec struct {
	Name     string
	UID      *int
	Groups   []string // supplementary groups the user must belong to; others are kept
	Shell    string
	Home     string
	Keys     []string // authorized_keys lines that must be present
	Password *string  // plain text, already resolved; nil leaves the password alone
	Sudo     *bool    // true grants sudo through /etc/sudoers.d, false removes that grant
}

// EnsureUser creates the user with the image's useradd, or brings an
// existing one in line with usermod (on images without them, Alpine's
// busybox adduser or imgbake's own edits of the account files), then sees
// to its keys, password and sudo rule. It changes nothing when everything already matches.
func EnsureUser(ctx context.Context, s Session, u UserSpec) (Result, error) {
	if u.Shell != "" {
		st, err := lstat(ctx, s, u.Shell)
		if err != nil {
			return Result{}, err
		}
		if !st.Exists {
			return Result{}, fmt.Errorf("shell %s does not exist in the image", u.Shell)
		}
	}
	groups, err := readGroups(ctx, s)
	if err != nil {
		return Result{}, err
	}
	for _, g := range u.Groups {
		if _, ok := groups[g]; !ok {
			return Result{}, fmt.Errorf("group %q does not exist in the image", g)
		}
	}
	cur, err := lookupUser(ctx, s, u.Name)
	if err != nil {
		return Result{}, err
	}
	var res Result
	var details []string
	if cur == nil {
		r, err := createUser(ctx, s, u, groups)
		if err != nil {
			return r, err
		}
		res.Changed = true
		details = append(details, "created")
	} else {
		r, what, err := updateUser(ctx, s, u, cur, groups)
		if err != nil {
			return r, err
		}
		if len(what) > 0 {
			res.Changed = true
			details = append(details, "updated "+strings.Join(what, ", "))
		}
	}
	if len(u.Keys) > 0 {
		r, err := AuthorizeKeys(ctx, s, u.Name, u.Keys)
		if err != nil {
			return res, err
		}
		res.merge(r)
		if r.Changed {
			details = append(details, r.Detail)
		}
	}
	if u.Password != nil {
		r, err := SetPassword(ctx, s, u.Name, *u.Password)
		if err != nil {
			return r, err
		}
		res.merge(r)
		if r.Changed {
			details = append(details, "password set")
		}
	}
	if u.Sudo != nil {
		r, err := Sudoer(ctx, s, u.Name, *u.Sudo)
		if err != nil {
			return r, err
		}
		res.merge(r)
		if r.Changed || r.Detail != "" {
			details = append(details, r.Detail)
		}
	}
	res.Detail = joinDetail(details...)
	return res, nil
}

func createUser(ctx context.Context, s Session, u UserSpec, groups map[string]passwd.Group) (Result, error) {
	if p, err := hasProgram(ctx, s, "useradd"); err != nil {
		return Result{}, err
	} else if p == "" {
		// Alpine: busybox's adduser; with neither, imgbake edits the files.
		if p, err := hasProgram(ctx, s, "adduser"); err != nil {
			return Result{}, err
		} else if p != "" {
			if bb, err := isBusyboxApplet(ctx, s, p); err != nil {
				return Result{}, err
			} else if bb {
				return createUserBusybox(ctx, s, u, groups)
			}
		}
		return createUserFiles(ctx, s, u)
	}
	argv := []string{"useradd", "-m"}
	if u.UID != nil {
		argv = append(argv, "-u", strconv.Itoa(*u.UID))
	}
	if u.Shell != "" {
		argv = append(argv, "-s", u.Shell)
	}
	if u.Home != "" {
		argv = append(argv, "-d", u.Home)
	}
	if len(u.Groups) > 0 {
		argv = append(argv, "-G", strings.Join(u.Groups, ","))
	}
	if _, ok := groups[u.Name]; ok {
		// useradd would refuse to create the user's own group.
		argv = append(argv, "-g", u.Name)
	}
	argv = append(argv, "--", u.Name)
	res, err := Exec(ctx, s, argv, RunOptions{})
	if err != nil {
		return Result{RC: res.RC, Stderr: res.Stderr}, fmt.Errorf("useradd: %w", err)
	}
	return Result{Changed: true}, nil
}

func updateUser(ctx context.Context, s Session, u UserSpec, cur *passwd.User, groups map[string]passwd.Group) (Result, []string, error) {
	var argv, what []string
	if u.UID != nil && *u.UID != cur.UID {
		argv = append(argv, "-u", strconv.Itoa(*u.UID))
		what = append(what, "uid")
	}
	if u.Shell != "" && u.Shell != cur.Shell {
		argv = append(argv, "-s", u.Shell)
		what = append(what, "shell")
	}
	if u.Home != "" && path.Clean(u.Home) != path.Clean(cur.Home) {
		argv = append(argv, "-d", u.Home, "-m")
		what = append(what, "home")
	}
	var missing []string
	for _, g := range u.Groups {
		e := groups[g]
		if e.GID != cur.GID && !slices.Contains(e.Members, u.Name) && !slices.Contains(missing, g) {
			missing = append(missing, g)
		}
	}
	if len(missing) > 0 {
		argv = append(argv, "-a", "-G", strings.Join(missing, ","))
		what = append(what, "groups +"+strings.Join(missing, ",+"))
	}
	if len(argv) == 0 {
		return Result{}, nil, nil
	}
	if p, err := hasProgram(ctx, s, "usermod"); err != nil {
		return Result{}, nil, err
	} else if p == "" {
		// Alpine without the shadow package, or no tools at all.
		if err := updateUserFiles(ctx, s, u, cur, missing); err != nil {
			return Result{}, nil, err
		}
		return Result{Changed: true}, what, nil
	}
	res, err := Exec(ctx, s, append(append([]string{"usermod"}, argv...), "--", u.Name), RunOptions{})
	if err != nil {
		return Result{RC: res.RC, Stderr: res.Stderr}, nil, fmt.Errorf("usermod: %w", err)
	}
	return Result{Changed: true}, what, nil
}

// keyTypeField matches the key type of an authorized_keys line.
var keyTypeField = regexp.MustCompile(`^(ssh-[a-z0-9-]+|ecdsa-sha2-[a-z0-9-]+|sk-[a-z0-9@.-]+)(@openssh\.com)?$`)

// keyBlob is the "type base64" part of an authorized_keys line, which
// identifies the key whatever its options and comment; "" if none.
func keyBlob(line string) string {
	f := strings.Fields(line)
	for i := 0; i+1 < len(f); i++ {
		if keyTypeField.MatchString(f[i]) && len(f[i+1]) >= 16 {
			return f[i] + " " + f[i+1]
		}
	}
	return ""
}

// AuthorizeKeys makes sure each key is in user's ~/.ssh/authorized_keys
// (keeping the keys already there), with ~/.ssh 0700 and the file 0600,
// both owned by the user.
func AuthorizeKeys(ctx context.Context, s Session, user string, keys []string) (Result, error) {
	pw, err := lookupUser(ctx, s, user)
	if err != nil {
		return Result{}, err
	}
	if pw == nil {
		return Result{}, fmt.Errorf("user %q does not exist in the image", user)
	}
	if !path.IsAbs(pw.Home) {
		return Result{}, fmt.Errorf("user %q has no usable home directory (%q) in /etc/passwd", user, pw.Home)
	}
	owner := strconv.Itoa(pw.UID) + ":" + strconv.Itoa(pw.GID)
	var res Result
	home, err := lstat(ctx, s, pw.Home)
	if err != nil {
		return res, err
	}
	if !home.Exists {
		r, err := Mkdir(ctx, s, pw.Home, WriteOptions{Mode: ptr(fs.FileMode(0o700)), Owner: owner})
		if err != nil {
			return res, err
		}
		res.merge(r)
	}
	sshDir := path.Join(pw.Home, ".ssh")
	r, err := Mkdir(ctx, s, sshDir, WriteOptions{Mode: ptr(fs.FileMode(0o700)), Owner: owner})
	if err != nil {
		return res, err
	}
	res.merge(r)
	file := path.Join(sshDir, "authorized_keys")
	old, _, err := readOptional(ctx, s, file)
	if err != nil {
		return res, err
	}
	have := map[string]bool{}
	for line := range strings.Lines(string(old)) {
		if b := keyBlob(line); b != "" {
			have[b] = true
		}
	}
	content := string(old)
	added := 0
	for _, k := range keys {
		k = strings.TrimSpace(k)
		b := keyBlob(k)
		if b == "" {
			return res, fmt.Errorf("not an OpenSSH public key: %.40q", k)
		}
		if have[b] {
			continue
		}
		have[b] = true
		if content != "" && !strings.HasSuffix(content, "\n") {
			content += "\n"
		}
		content += k + "\n"
		added++
	}
	r, err = WriteFile(ctx, s, file, strings.NewReader(content), WriteOptions{Mode: ptr(fs.FileMode(0o600)), Owner: owner})
	if err != nil {
		return res, err
	}
	res.merge(r)
	switch {
	case added > 0:
		res.Detail = fmt.Sprintf("%d key(s) added to %s", added, file)
	case res.Changed:
		res.Detail = "fixed ownership or modes of " + sshDir
	}
	return res, nil
}

// sudoersFile is the drop-in for user. sudo skips names with a '.', so
// those become '_'.
func sudoersFile(user string) string {
	return "/etc/sudoers.d/" + strings.ReplaceAll(user, ".", "_")
}

// Sudoer grants user full sudo rights without a password through
// /etc/sudoers.d/NAME (mode 0440, checked with the image's visudo when sudo
// is installed), or removes that file.
func Sudoer(ctx context.Context, s Session, user string, grant bool) (Result, error) {
	file := sudoersFile(user)
	if !grant {
		r, err := Delete(ctx, s, file)
		if r.Changed {
			r.Detail = "removed " + file
		}
		return r, err
	}
	var res Result
	dir, err := lstat(ctx, s, "/etc/sudoers.d")
	if err != nil {
		return res, err
	}
	if !dir.Exists {
		r, err := Mkdir(ctx, s, "/etc/sudoers.d", WriteOptions{Mode: ptr(fs.FileMode(0o755)), Owner: "0:0"})
		if err != nil {
			return res, err
		}
		res.merge(r)
	}
	content := "# Written by imgbake: " + user + " may run any command as any user, without a password.\n" +
		user + " ALL=(ALL:ALL) NOPASSWD: ALL\n"
	existed, err := lstat(ctx, s, file)
	if err != nil {
		return res, err
	}
	r, err := WriteFile(ctx, s, file, strings.NewReader(content), WriteOptions{Mode: ptr(fs.FileMode(0o440)), Owner: "0:0"})
	if err != nil {
		return res, err
	}
	res.merge(r)
	visudo, err := hasProgram(ctx, s, "visudo")
	if err != nil {
		return res, err
	}
	if visudo == "" {
		res.Detail = "sudo is not installed in the image: " + file + " is written but not checked by visudo"
		return res, nil
	}
	if r.Changed {
		if vr, err := Exec(ctx, s, []string{"visudo", "-c", "-q", "-f", file}, RunOptions{}); err != nil {
			if !existed.Exists {
				_, _ = Delete(ctx, s, file)
			}
			return Result{RC: vr.RC, Stdout: vr.Stdout, Stderr: vr.Stderr}, fmt.Errorf("visudo rejects %s: %w", file, err)
		}
		res.Detail = file + " written (checked by visudo)"
	}
	if main, ok, err := readOptional(ctx, s, "/etc/sudoers"); err == nil && ok && !strings.Contains(string(main), "includedir /etc/sudoers.d") {
		res.Detail = joinDetail(res.Detail, "warning: /etc/sudoers does not include /etc/sudoers.d")
	}
	return res, nil
}
