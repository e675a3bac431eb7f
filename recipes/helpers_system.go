package recipes

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Decoder helpers shared by the system step kinds (user, password, service,
// cron, fstab, ...).

// integer decodes a YAML integer within [lo, hi].
func (d *decoder) integer(ctx string, n *yaml.Node, lo, hi int64) (int64, bool) {
	s := resolve(n)
	if s.Kind != yaml.ScalarNode || s.ShortTag() != "!!int" {
		d.typeError(ctx, "an integer", n)
		return 0, false
	}
	v, err := strconv.ParseInt(s.Value, 0, 64)
	if err != nil || v < lo || v > hi {
		d.errorf(n, "%s%s is out of range (%d to %d)", prefix(ctx), show(s.Value), lo, hi)
		return 0, false
	}
	return v, true
}

// trueOnly decodes a step whose only meaningful value is true, such as
// `machine_id_reset: true`.
func (d *decoder) trueOnly(ctx string, n *yaml.Node) {
	s := resolve(n)
	if s.Kind != yaml.ScalarNode || s.ShortTag() != "!!bool" {
		d.typeError(ctx, "true", n)
		return
	}
	if !d.boolean(ctx, n) {
		d.errorf(n, "%sonly true is meaningful; remove the step instead", prefix(ctx))
	}
}

// singleLine decodes a non-empty string without line breaks or NUL bytes.
// what names the value in messages, e.g. "command".
func (d *decoder) singleLine(ctx, what string, n *yaml.Node) string {
	s, ok := d.str(ctx, n)
	switch {
	case !ok:
		return ""
	case strings.TrimSpace(s) == "":
		d.errorf(n, "%s%s is empty", prefix(ctx), what)
	case strings.ContainsAny(s, "\n\r\x00"):
		d.errorf(n, "%s%s must be a single line (no line breaks or NUL bytes)", prefix(ctx), what)
	}
	return s
}

// accountName matches user and group names as shadow's useradd accepts them
// by default (plus '.', which Debian allows): at most 32 characters.
var accountName = regexp.MustCompile(`^[a-z_][a-z0-9_.-]{0,30}[a-z0-9_.$-]?$`)

// account decodes a user or group name; what is "user" or "group".
func (d *decoder) account(ctx, what string, n *yaml.Node) string {
	s, ok := d.str(ctx, n)
	if !ok {
		return ""
	}
	if !accountName.MatchString(s) {
		d.errorf(n, "%s%s is not a valid %s name (lower-case letters, digits, '_', '-' and '.', starting with a letter or '_', at most 32 characters)",
			prefix(ctx), quote(s), what)
	}
	return s
}

// stringList decodes a list of scalars (a single scalar counts as a list of
// one), each checked by item.
func (d *decoder) stringList(ctx string, n *yaml.Node, item func(ctx string, n *yaml.Node) string) []string {
	l := resolve(n)
	if l.Kind == yaml.ScalarNode && !isNull(l) {
		return []string{item(ctx, n)}
	}
	if l.Kind != yaml.SequenceNode {
		d.typeError(ctx, "a list", n)
		return nil
	}
	out := make([]string, 0, len(l.Content))
	for i, v := range l.Content {
		out = append(out, item(ctx+"["+strconv.Itoa(i)+"]", v))
	}
	return out
}

// sshKeyTypes are the key type prefixes of OpenSSH public keys.
var sshKeyType = regexp.MustCompile(`^(ssh-(rsa|dss|ed25519|ed448)|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com|ssh-(rsa|ed25519|dss)-cert-v01@openssh\.com|ecdsa-sha2-nistp(256|384|521)-cert-v01@openssh\.com)$`)

var base64Field = regexp.MustCompile(`^[A-Za-z0-9+/]+={0,3}$`)

// CheckSSHKey reports whether line looks like one authorized_keys entry:
// optional options, a key type, a base64 key and an optional comment.
func CheckSSHKey(line string) error {
	if strings.ContainsAny(line, "\n\r\x00") {
		return errors.New("an authorized key must be a single line")
	}
	f := strings.Fields(line)
	for i := 0; i+1 < len(f); i++ {
		if sshKeyType.MatchString(f[i]) && base64Field.MatchString(f[i+1]) {
			return nil
		}
	}
	return errors.New(`not an OpenSSH public key (want e.g. "ssh-ed25519 AAAA... user@host")`)
}

func (d *decoder) sshKey(ctx string, n *yaml.Node) string {
	s, ok := d.str(ctx, n)
	if !ok {
		return ""
	}
	if err := CheckSSHKey(s); err != nil {
		d.errorf(n, "%s%v", prefix(ctx), err)
	}
	return strings.TrimSpace(s)
}

// Secret is where a password comes from. Exactly one field is set. The
// plain text never appears in messages: String and Describe only name the
// source.
type Secret struct {
	Password string // plain text
	File     string // absolute host path; its first line is the password
	Random   string // absolute host path a generated passphrase is written to (mode 0600)
}

// Source names where the password comes from: "password", "file" or "random".
func (s Secret) Source() string {
	switch {
	case s.File != "":
		return "file"
	case s.Random != "":
		return "random"
	}
	return "password"
}

// String never shows the password itself.
func (s Secret) String() string {
	switch s.Source() {
	case "file":
		return "{file: " + s.File + "}"
	case "random":
		return "{random: " + s.Random + "}"
	}
	return "{password: ***}"
}

// GoString is String, so that %#v does not show the password either.
func (s Secret) GoString() string { return "recipes.Secret" + s.String() }

// password decodes a plain-text password: never empty, one line. Messages
// never include it.
func (d *decoder) password(ctx string, n *yaml.Node) string {
	s := resolve(n)
	if s.Kind != yaml.ScalarNode || isNull(s) {
		d.typeError(ctx, "a string", n)
		return ""
	}
	p := s.Value
	switch {
	case p == "":
		d.errorf(n, "%sempty password", prefix(ctx))
	case strings.ContainsAny(p, "\n\r\x00"):
		d.errorf(n, "%sthe password must be a single line (no line breaks or NUL bytes)", prefix(ctx))
	}
	return p
}

// randomPath decodes the host file a generated password is written to: its
// directory must exist and it must not be a directory itself.
func (d *decoder) randomPath(ctx string, n *yaml.Node) string {
	abs, written := d.hostPath(ctx, n)
	if abs == "" {
		return ""
	}
	if fi, err := os.Stat(abs); err == nil && fi.IsDir() {
		d.errorf(n, "%s%s is a directory; name the file to write the password to", prefix(ctx), quote(written))
		return abs
	}
	dir := filepath.Dir(abs)
	if fi, err := os.Stat(dir); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			d.errorf(n, "%sdirectory %q does not exist (for %s)", prefix(ctx), dir, quote(written))
		} else {
			d.errorf(n, "%s%s: %v", prefix(ctx), quote(written), err)
		}
	} else if !fi.IsDir() {
		d.errorf(n, "%s%q is not a directory (for %s)", prefix(ctx), dir, quote(written))
	}
	return abs
}

// secretDecoder decodes {password | file | random} (and locked, when
// lockable): its fields go into a d.fields call, possibly next to others,
// then done checks that exactly one was given.
type secretDecoder struct {
	d      *decoder
	ctx    string
	keys   []string
	given  []string
	sec    Secret
	locked bool
}

func (d *decoder) secretFields(ctx string, lockable bool) (*secretDecoder, []field) {
	s := &secretDecoder{d: d, ctx: ctx, keys: []string{"password", "file", "random"}}
	fields := []field{
		{key: "password", decode: func(v *yaml.Node) {
			if p := d.password(ctx+".password", v); s.one("password", v) {
				s.sec.Password = p
			}
		}},
		{key: "file", decode: func(v *yaml.Node) {
			if p := d.existingHostPath(ctx+".file", v); s.one("file", v) {
				s.sec.File = p
			}
		}},
		{key: "random", decode: func(v *yaml.Node) {
			if p := d.randomPath(ctx+".random", v); s.one("random", v) {
				s.sec.Random = p
			}
		}},
	}
	if lockable {
		s.keys = append(s.keys, "locked")
		fields = append(fields, field{key: "locked", decode: func(v *yaml.Node) {
			if !d.boolean(ctx+".locked", v) {
				if b := resolve(v); b.Kind == yaml.ScalarNode && b.ShortTag() == "!!bool" {
					d.errorf(v, "%s.locked: only true is meaningful; to unlock the account, set a password", ctx)
				}
				return
			}
			if s.one("locked", v) {
				s.locked = true
			}
		}})
	}
	return s, fields
}

func (s *secretDecoder) one(key string, v *yaml.Node) bool {
	s.given = append(s.given, key)
	if len(s.given) > 1 {
		s.d.errorf(v, "%s.%s: give only one of %s (%s is already set)", s.ctx, key, strings.Join(s.keys, ", "), s.given[0])
		return false
	}
	return true
}

// done reports a mapping n that gave none of the keys.
func (s *secretDecoder) done(n *yaml.Node) {
	if len(s.given) == 0 {
		s.d.errorf(n, "%s: needs one of %s", s.ctx, strings.Join(s.keys, ", "))
	}
}

// secret decodes a mapping that holds nothing but a secret.
func (d *decoder) secret(ctx string, n *yaml.Node, lockable bool) (Secret, bool) {
	s, fields := d.secretFields(ctx, lockable)
	if d.fields(ctx, n, fields...) {
		s.done(n)
	}
	return s.sec, s.locked
}
