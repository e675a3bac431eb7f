package fsops

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/imgbake/imgbake/appliance/passwd"
)

// Passwords. The plain text only ever travels on the stdin of a command in
// the image (chpasswd, or perl to check a hash the host cannot): never in
// argv, never in a file of the image, never in a Result.

// SetPassword sets user's password in the image. When the current hash
// already matches the password nothing changes: the hash is checked, not
// recomputed (SHA-crypt on the host, anything else with the image's perl).
// The new hash is made by the image's chpasswd with the method the image's
// /etc/login.defs asks for: YESCRYPT when ENCRYPT_METHOD says so, else
// SHA512.
func SetPassword(ctx context.Context, s Session, user, password string) (Result, error) {
	if password == "" || strings.ContainsAny(password, "\n\r\x00") {
		return Result{}, errors.New("a password must be one non-empty line")
	}
	pw, err := lookupUser(ctx, s, user)
	if err != nil {
		return Result{}, err
	}
	if pw == nil {
		return Result{}, fmt.Errorf("user %q does not exist in the image", user)
	}
	hash, hasShadow, err := shadowHash(ctx, s, user)
	if err != nil {
		return Result{}, err
	}
	note := ""
	if hasShadow {
		match, known, err := verifyHash(ctx, s, password, hash)
		if err != nil {
			return Result{}, err
		}
		if match {
			return Result{Detail: "password already set"}, nil
		}
		if !known {
			note = "the current hash could not be checked (no perl in the image), so it was set again"
		}
	}
	method, err := hashMethod(ctx, s)
	if err != nil {
		return Result{}, err
	}
	if p, err := hasProgram(ctx, s, "chpasswd"); err != nil {
		return Result{}, err
	} else if p == "" {
		// A busybox without its chpasswd applet: the hash is made here.
		if _, err := writeShadowHash(ctx, s, user, password); err != nil {
			return Result{}, fmt.Errorf("the image has no chpasswd, and writing /etc/shadow directly failed: %w", err)
		}
		return Result{Changed: true, Detail: joinDetail("sha512, written into /etc/shadow by imgbake (the image has no chpasswd)", note)}, nil
	}
	res, err := Exec(ctx, s, []string{"chpasswd", "-c", method}, RunOptions{Stdin: strings.NewReader(user + ":" + password + "\n")})
	if err != nil {
		return Result{RC: res.RC, Stderr: res.Stderr}, fmt.Errorf("chpasswd: %w", err)
	}
	// Check the result, so that a chpasswd that quietly did something else
	// does not go unnoticed.
	hash, _, err = shadowHash(ctx, s, user)
	if err != nil {
		return Result{}, err
	}
	if match, known, err := verifyHash(ctx, s, password, hash); err != nil {
		return Result{}, err
	} else if known && !match {
		return Result{}, fmt.Errorf("chpasswd ran but /etc/shadow does not hold the new password for %q", user)
	}
	return Result{Changed: true, Detail: joinDetail(strings.ToLower(method), note)}, nil
}

// hashMethod is the chpasswd -c method for the image: YESCRYPT where the
// image's login.defs asks for it, SHA512 otherwise.
func hashMethod(ctx context.Context, s Session) (string, error) {
	m, err := loginDefs(ctx, s, "ENCRYPT_METHOD")
	if err != nil {
		return "", err
	}
	if strings.EqualFold(m, "YESCRYPT") {
		return "YESCRYPT", nil
	}
	return "SHA512", nil
}

// verifyHash checks password against a crypt(3) hash. known is false when
// neither the host nor the image could check it. Locked ("!...") and
// disabled ("*") hashes never match.
func verifyHash(ctx context.Context, s Session, password, hash string) (match, known bool, err error) {
	if hash == "" || hash[0] == '!' || hash[0] == '*' || !strings.HasPrefix(hash, "$") {
		return false, true, nil
	}
	if m, ok := shaCryptMatches(password, hash); ok {
		return m, true, nil
	}
	// yescrypt, bcrypt, ...: ask the image's libcrypt through perl, with
	// the hash and the password on stdin.
	perl, err := hasProgram(ctx, s, "perl")
	if err != nil || perl == "" {
		return false, false, err
	}
	const script = `my $in = do { local $/; <STDIN> }; my ($h, $p) = split /\n/, $in, 2; ` +
		`$p = "" unless defined $p; my $c = crypt($p, $h); exit(defined $c && $c eq $h ? 0 : 1);`
	res, err := Exec(ctx, s, []string{"perl", "-e", script}, RunOptions{Stdin: strings.NewReader(hash + "\n" + password)})
	var ce *CommandError
	switch {
	case err == nil:
		return true, true, nil
	case errors.As(err, &ce) && res.RC == 1 && !ce.TimedOut && ce.Signal == "":
		return false, true, nil
	case errors.As(err, &ce):
		return false, false, nil
	}
	return false, false, err
}

// LockPassword locks user's password the way passwd -l does (a '!' in front
// of the hash), with the image's usermod, or by editing /etc/shadow where
// the image has none (Alpine).
func LockPassword(ctx context.Context, s Session, user string) (Result, error) {
	hash, ok, err := shadowHash(ctx, s, user)
	if err != nil {
		return Result{}, err
	}
	if !ok {
		return Result{}, fmt.Errorf("user %q has no entry in the image's /etc/shadow", user)
	}
	if strings.HasPrefix(hash, "!") {
		return Result{Detail: "already locked"}, nil
	}
	if p, err := hasProgram(ctx, s, "usermod"); err != nil {
		return Result{}, err
	} else if p == "" {
		db, err := readUserDB(ctx, s)
		if err != nil {
			return Result{}, err
		}
		old := *db
		e, err := passwd.LookupShadow([]byte(db.shadow), user)
		if err != nil {
			return Result{}, fmt.Errorf("/etc/shadow: %s: %w", user, err)
		}
		db.shadow = editLine(db.shadow, e.Line, func(f []string) []string { f[1] = "!" + f[1]; return f })
		if err := db.write(ctx, s, &old); err != nil {
			return Result{}, err
		}
		return Result{Changed: true, Detail: "locked (in /etc/shadow: the image has no usermod)"}, nil
	}
	res, err := Exec(ctx, s, []string{"usermod", "-L", "--", user}, RunOptions{})
	if err != nil {
		return Result{RC: res.RC, Stderr: res.Stderr}, fmt.Errorf("usermod -L: %w", err)
	}
	return Result{Changed: true, Detail: "locked"}, nil
}

// passphraseAlphabet has no look-alikes (no 0/o, 1/l/i).
const passphraseAlphabet = "abcdefghjkmnpqrstuvwxyz23456789"

// GeneratePassphrase returns a random passphrase of five groups of five
// characters (about 124 bits), e.g. "k7mqx-2pfta-...".
func GeneratePassphrase() string {
	var b strings.Builder
	for g := range 5 {
		if g > 0 {
			b.WriteByte('-')
		}
		for range 5 {
			b.WriteByte(passphraseAlphabet[randIndex(len(passphraseAlphabet))])
		}
	}
	return b.String()
}

// randIndex is a uniform random number in [0, n) from crypto/rand.
func randIndex(n int) int {
	limit := 256 - 256%n
	var buf [1]byte
	for {
		_, _ = rand.Read(buf[:]) // never fails (see crypto/rand.Read)
		if int(buf[0]) < limit {
			return int(buf[0]) % n
		}
	}
}

// WriteSecretFile writes a password (and a newline) to a host file with
// mode 0600, atomically, replacing an existing file.
func WriteSecretFile(path, secret string) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("writing the password file: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename there is nothing to remove
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("writing the password file: %w", err)
	}
	if _, err := f.WriteString(secret + "\n"); err != nil {
		f.Close()
		return fmt.Errorf("writing the password file: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("writing the password file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing the password file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing the password file: %w", err)
	}
	return nil
}

// ReadSecretFile returns the first line of a host file, without its line
// ending.
func ReadSecretFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("reading the password file: %w", err)
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	switch {
	case len(line) == 0:
		return "", fmt.Errorf("password file %s: the first line is empty", path)
	case bytes.IndexByte(line, 0) >= 0:
		return "", fmt.Errorf("password file %s: the first line contains a NUL byte", path)
	}
	return string(line), nil
}
