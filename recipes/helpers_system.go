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
func (d *Decoder) Int(ctx string, n *yaml.Node, lo, hi int64) (int64, bool) {
	s := ResolveAlias(n)
	if s.Kind != yaml.ScalarNode || s.ShortTag() != "!!int" {
		d.TypeError(ctx, "an integer", n)
		return 0, false
	}
	v, err := strconv.ParseInt(s.Value, 0, 64)
	if err != nil || v < lo || v > hi {
		d.Errorf(n, "%s%s is out of range (%d to %d)", Prefix(ctx), show(s.Value), lo, hi)
		return 0, false
	}
	return v, true
}

// trueOnly decodes a step whose only meaningful value is true, such as
// `machine_id_reset: true`.
func (d *Decoder) TrueOnly(ctx string, n *yaml.Node) {
	s := ResolveAlias(n)
	if s.Kind != yaml.ScalarNode || s.ShortTag() != "!!bool" {
		d.TypeError(ctx, "true", n)
		return
	}
	if !d.Bool(ctx, n) {
		d.Errorf(n, "%sonly true is meaningful; remove the step instead", Prefix(ctx))
	}
}

// singleLine decodes a non-empty string without line breaks or NUL bytes.
// what names the value in messages, e.g. "command".
func (d *Decoder) SingleLine(ctx, what string, n *yaml.Node) string {
	s, ok := d.Str(ctx, n)
	switch {
	case !ok:
		return ""
	case strings.TrimSpace(s) == "":
		d.Errorf(n, "%s%s is empty", Prefix(ctx), what)
	case strings.ContainsAny(s, "\n\r\x00"):
		d.Errorf(n, "%s%s must be a single line (no line breaks or NUL bytes)", Prefix(ctx), what)
	}
	return s
}

// accountName matches user and group names as shadow's useradd accepts them
// by default (plus '.', which Debian allows): at most 32 characters.
var accountName = regexp.MustCompile(`^[a-z_][a-z0-9_.-]{0,30}[a-z0-9_.$-]?$`)

// account decodes a user or group name; what is "user" or "group".
func (d *Decoder) Account(ctx, what string, n *yaml.Node) string {
	s, ok := d.Str(ctx, n)
	if !ok {
		return ""
	}
	if !accountName.MatchString(s) {
		d.Errorf(n, "%s%s is not a valid %s name (lower-case letters, digits, '_', '-' and '.', starting with a letter or '_', at most 32 characters)",
			Prefix(ctx), Quote(s), what)
	}
	return s
}

// stringList decodes a list of scalars (a single scalar counts as a list of
// one), each checked by item.
func (d *Decoder) StringList(ctx string, n *yaml.Node, item func(ctx string, n *yaml.Node) string) []string {
	l := ResolveAlias(n)
	if l.Kind == yaml.ScalarNode && !IsNull(l) {
		return []string{item(ctx, n)}
	}
	if l.Kind != yaml.SequenceNode {
		d.TypeError(ctx, "a list", n)
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

func (d *Decoder) SSHKey(ctx string, n *yaml.Node) string {
	s, ok := d.Str(ctx, n)
	if !ok {
		return ""
	}
	if err := CheckSSHKey(s); err != nil {
		d.Errorf(n, "%s%v", Prefix(ctx), err)
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
func (d *Decoder) Password(ctx string, n *yaml.Node) string {
	s := ResolveAlias(n)
	if s.Kind != yaml.ScalarNode || IsNull(s) {
		d.TypeError(ctx, "a string", n)
		return ""
	}
	p := s.Value
	switch {
	case p == "":
		d.Errorf(n, "%sempty password", Prefix(ctx))
	case strings.ContainsAny(p, "\n\r\x00"):
		d.Errorf(n, "%sthe password must be a single line (no line breaks or NUL bytes)", Prefix(ctx))
	}
	return p
}

// randomPath decodes the host file a generated password is written to: its
// directory must exist and it must not be a directory itself.
func (d *Decoder) RandomPath(ctx string, n *yaml.Node) string {
	abs, written := d.HostPath(ctx, n)
	if abs == "" {
		return ""
	}
	if fi, err := os.Stat(abs); err == nil && fi.IsDir() {
		d.Errorf(n, "%s%s is a directory; name the file to write the password to", Prefix(ctx), Quote(written))
		return abs
	}
	dir := filepath.Dir(abs)
	if fi, err := os.Stat(dir); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			d.Errorf(n, "%sdirectory %q does not exist (for %s)", Prefix(ctx), dir, Quote(written))
		} else {
			d.Errorf(n, "%s%s: %v", Prefix(ctx), Quote(written), err)
		}
	} else if !fi.IsDir() {
		d.Errorf(n, "%s%q is not a directory (for %s)", Prefix(ctx), dir, Quote(written))
	}
	return abs
}

// SecretDecoder decodes {password | file | random} (and locked, when
// lockable): its fields go into a d.Fields call, possibly next to others,
// then done checks that exactly one was given.
type SecretDecoder struct {
	d      *Decoder
	ctx    string
	keys   []string
	given  []string
	sec    Secret
	locked bool
}

func (d *Decoder) SecretFields(ctx string, lockable bool) (*SecretDecoder, []Field) {
	s := &SecretDecoder{d: d, ctx: ctx, keys: []string{"password", "file", "random"}}
	fields := []Field{
		{Key: "password", Decode: func(v *yaml.Node) {
			if p := d.Password(ctx+".password", v); s.One("password", v) {
				s.sec.Password = p
			}
		}},
		{Key: "file", Decode: func(v *yaml.Node) {
			if p := d.ExistingHostPath(ctx+".file", v); s.One("file", v) {
				s.sec.File = p
			}
		}},
		{Key: "random", Decode: func(v *yaml.Node) {
			if p := d.RandomPath(ctx+".random", v); s.One("random", v) {
				s.sec.Random = p
			}
		}},
	}
	if lockable {
		s.keys = append(s.keys, "locked")
		fields = append(fields, Field{Key: "locked", Decode: func(v *yaml.Node) {
			if !d.Bool(ctx+".locked", v) {
				if b := ResolveAlias(v); b.Kind == yaml.ScalarNode && b.ShortTag() == "!!bool" {
					d.Errorf(v, "%s.locked: only true is meaningful; to unlock the account, set a password", ctx)
				}
				return
			}
			if s.One("locked", v) {
				s.locked = true
			}
		}})
	}
	return s, fields
}

func (s *SecretDecoder) One(key string, v *yaml.Node) bool {
	s.given = append(s.given, key)
	if len(s.given) > 1 {
		s.d.Errorf(v, "%s.%s: give only one of %s (%s is already set)", s.ctx, key, strings.Join(s.keys, ", "), s.given[0])
		return false
	}
	return true
}

// done reports a mapping n that gave none of the keys.
// Value is the secret decoded so far.
func (s *SecretDecoder) Value() Secret { return s.sec }

// Locked reports whether the mapping asked for a locked password.
func (s *SecretDecoder) Locked() bool { return s.locked }

func (s *SecretDecoder) Done(n *yaml.Node) {
	if len(s.given) == 0 {
		s.d.Errorf(n, "%s: needs one of %s", s.ctx, strings.Join(s.keys, ", "))
	}
}

// secret decodes a mapping that holds nothing but a secret.
func (d *Decoder) Secret(ctx string, n *yaml.Node, lockable bool) (Secret, bool) {
	s, fields := d.SecretFields(ctx, lockable)
	if d.Fields(ctx, n, fields...) {
		s.Done(n)
	}
	return s.sec, s.locked
}
