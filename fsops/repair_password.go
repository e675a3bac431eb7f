package fsops

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/imgbake/imgbake/appliance/passwd"
)

// ResetPassword sets user's password the way SetPassword does (the image's
// own chpasswd, checked afterwards), and still works when the image's tools
// do not: when chpasswd is missing or fails (a broken library, a broken PAM
// stack), a SHA-512 crypt hash is made on the host and written into
// /etc/shadow directly, keeping the file's mode and owner. The password
// itself is never written anywhere.
func ResetPassword(ctx context.Context, s Session, user, password string) (Result, error) {
	res, err := SetPassword(ctx, s, user, password)
	if err == nil || !chpasswdUnusable(err) || ctx.Err() != nil {
		return res, err
	}
	res2, err2 := writeShadowHash(ctx, s, user, password)
	if err2 != nil {
		return res2, fmt.Errorf("%w; writing /etc/shadow directly failed too: %w", err, err2)
	}
	res2.Detail = "sha512, written into /etc/shadow by imgbake: the image's chpasswd did not work (" + err.Error() + ")"
	return res2, nil
}

// chpasswdUnusable tells the failures of the image's chpasswd (worth the
// fallback) from the others (no such user, an unreadable /etc/shadow).
func chpasswdUnusable(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "has no chpasswd") || strings.HasPrefix(msg, "chpasswd") ||
		strings.Contains(msg, "chpasswd ran but")
}

// writeShadowHash sets user's hash in /etc/shadow to a new SHA-512 crypt of
// password and the last-change day to today. A user in /etc/passwd without
// a shadow entry gets one; a passwd entry whose password field is not "x"
// is pointed at the shadow file.
func writeShadowHash(ctx context.Context, s Session, user, password string) (Result, error) {
	passwdPath, _, err := resolveFile(ctx, s, passwd.PasswdFile)
	if err != nil {
		return Result{}, err
	}
	pwData, err := ReadFile(ctx, s, passwdPath, 16<<20)
	if err != nil {
		return Result{}, fmt.Errorf("reading /etc/passwd: %w", err)
	}
	pw, err := passwd.LookupUser(pwData, user)
	if errors.Is(err, passwd.ErrNotFound) {
		return Result{}, fmt.Errorf("user %q does not exist in the image", user)
	} else if err != nil {
		return Result{}, fmt.Errorf("/etc/passwd in the image has a bad entry for %q: %w", user, err)
	}
	shadowPath, exists, err := resolveFile(ctx, s, passwd.ShadowFile)
	if err != nil {
		return Result{}, err
	}
	if !exists {
		return Result{}, errors.New("the image has no /etc/shadow")
	}
	shadow, err := ReadFile(ctx, s, shadowPath, 16<<20)
	if err != nil {
		return Result{}, fmt.Errorf("reading /etc/shadow: %w", err)
	}
	hash, err := newSHA512Crypt(password)
	if err != nil {
		return Result{}, err
	}
	out := setShadowEntry(string(shadow), user, hash, time.Now())
	if _, err := WriteFile(ctx, s, shadowPath, strings.NewReader(out), WriteOptions{}); err != nil {
		return Result{}, fmt.Errorf("writing /etc/shadow: %w", err)
	}
	if pw.Password != "x" {
		pwLines := strings.Split(string(pwData), "\n")
		f := strings.Split(pwLines[pw.Line-1], ":")
		f[1] = "x"
		pwLines[pw.Line-1] = strings.Join(f, ":")
		if _, err := WriteFile(ctx, s, passwdPath, bytes.NewReader([]byte(strings.Join(pwLines, "\n"))), WriteOptions{}); err != nil {
			return Result{}, fmt.Errorf("writing /etc/passwd: %w", err)
		}
	}
	return Result{Changed: true}, nil
}

// newSHA512Crypt hashes password as crypt(3) "$6$" with a random 16
// character salt and the default rounds.
// SHA512Crypt hashes password as crypt(3) SHA-512 ("$6$...") with a new
// random salt.
func SHA512Crypt(password string) (string, error) { return newSHA512Crypt(password) }

func newSHA512Crypt(password string) (string, error) {
	salt := make([]byte, 16)
	for i := range salt {
		salt[i] = cryptAlphabet[randIndex(len(cryptAlphabet))]
	}
	hash, ok := shaCrypt(password, "$6$"+string(salt))
	if !ok {
		return "", errors.New("sha512-crypt failed")
	}
	if m, known := shaCryptMatches(password, hash); !known || !m {
		return "", errors.New("sha512-crypt does not verify its own hash")
	}
	return hash, nil
}

// setShadowEntry puts hash in user's line of a shadow file (fields: name,
// hash, last change in days, min, max, warn, inactive, expire, reserved),
// adding the line when the user has none.
func setShadowEntry(shadow, user, hash string, now time.Time) string {
	day := strconv.FormatInt(now.Unix()/86400, 10)
	if e, err := passwd.LookupShadow([]byte(shadow), user); err == nil {
		lines := strings.Split(shadow, "\n")
		f := strings.Split(lines[e.Line-1], ":")
		for len(f) < 9 {
			f = append(f, "")
		}
		f[1], f[2] = hash, day
		lines[e.Line-1] = strings.Join(f, ":")
		return strings.Join(lines, "\n")
	}
	if shadow != "" && !strings.HasSuffix(shadow, "\n") {
		shadow += "\n"
	}
	return shadow + user + ":" + hash + ":" + day + ":0:99999:7:::\n"
}
