package fsops

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"hash"
	"strconv"
	"strings"
)

// SHA-crypt ($5$ and $6$, Ulrich Drepper's "Unix crypt using SHA-256 and
// SHA-512"), used to check a password against an existing /etc/shadow hash
// on the host, so that the password never has to be re-hashed just to find
// out whether it changed.

const (
	shaCryptDefaultRounds = 5000
	shaCryptMinRounds     = 1000
	shaCryptMaxRounds     = 999999999
	shaCryptMaxSalt       = 16
	cryptAlphabet         = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)

// shaCrypt computes the crypt(3) string for password with setting, which
// starts with "$5$" or "$6$" and may carry "rounds=N$" and a salt (anything
// after the salt is ignored). ok is false for other settings.
func shaCrypt(password, setting string) (string, bool) {
	var newHash func() hash.Hash
	var prefix string
	switch {
	case strings.HasPrefix(setting, "$5$"):
		newHash, prefix = sha256.New, "$5$"
	case strings.HasPrefix(setting, "$6$"):
		newHash, prefix = sha512.New, "$6$"
	default:
		return "", false
	}
	rest := setting[len(prefix):]
	rounds, customRounds := shaCryptDefaultRounds, false
	if r, ok := strings.CutPrefix(rest, "rounds="); ok {
		i := strings.IndexByte(r, '$')
		if i < 0 {
			return "", false
		}
		n, err := strconv.ParseUint(r[:i], 10, 64)
		if err != nil {
			return "", false
		}
		rounds = int(min(max(n, shaCryptMinRounds), shaCryptMaxRounds))
		customRounds = true
		rest = r[i+1:]
	}
	salt := rest
	if i := strings.IndexByte(salt, '$'); i >= 0 {
		salt = salt[:i]
	}
	if len(salt) > shaCryptMaxSalt {
		salt = salt[:shaCryptMaxSalt]
	}
	pw, sb := []byte(password), []byte(salt)

	b := newHash()
	b.Write(pw)
	b.Write(sb)
	b.Write(pw)
	sumB := b.Sum(nil)
	size := len(sumB)

	a := newHash()
	a.Write(pw)
	a.Write(sb)
	for n := len(pw); n > 0; n -= size {
		a.Write(sumB[:min(n, size)])
	}
	for n := len(pw); n > 0; n >>= 1 {
		if n&1 != 0 {
			a.Write(sumB)
		} else {
			a.Write(pw)
		}
	}
	sumA := a.Sum(nil)

	dp := newHash()
	for range len(pw) {
		dp.Write(pw)
	}
	p := repeatTo(dp.Sum(nil), len(pw))

	ds := newHash()
	for range 16 + int(sumA[0]) {
		ds.Write(sb)
	}
	s := repeatTo(ds.Sum(nil), len(sb))

	c := sumA
	for i := range rounds {
		h := newHash()
		if i&1 != 0 {
			h.Write(p)
		} else {
			h.Write(c)
		}
		if i%3 != 0 {
			h.Write(s)
		}
		if i%7 != 0 {
			h.Write(p)
		}
		if i&1 != 0 {
			h.Write(c)
		} else {
			h.Write(p)
		}
		c = h.Sum(nil)
	}

	var out strings.Builder
	out.WriteString(prefix)
	if customRounds {
		out.WriteString("rounds=" + strconv.Itoa(rounds) + "$")
	}
	out.WriteString(salt)
	out.WriteByte('$')
	if size == sha512.Size {
		encodeCrypt(&out, c, sha512Order)
	} else {
		encodeCrypt(&out, c, sha256Order)
	}
	return out.String(), true
}

func repeatTo(block []byte, n int) []byte {
	out := make([]byte, 0, n)
	for len(out) < n {
		out = append(out, block[:min(len(block), n-len(out))]...)
	}
	return out
}

// The byte triples of the final digest, in the order the encoding takes
// them; a trailing group of one or two bytes ends each list.
var (
	sha512Order = [][]int{
		{0, 21, 42}, {22, 43, 1}, {44, 2, 23}, {3, 24, 45}, {25, 46, 4}, {47, 5, 26}, {6, 27, 48},
		{28, 49, 7}, {50, 8, 29}, {9, 30, 51}, {31, 52, 10}, {53, 11, 32}, {12, 33, 54}, {34, 55, 13},
		{56, 14, 35}, {15, 36, 57}, {37, 58, 16}, {59, 17, 38}, {18, 39, 60}, {40, 61, 19}, {62, 20, 41},
		{63},
	}
	sha256Order = [][]int{
		{0, 10, 20}, {21, 1, 11}, {12, 22, 2}, {3, 13, 23}, {24, 4, 14}, {15, 25, 5}, {6, 16, 26},
		{27, 7, 17}, {18, 28, 8}, {9, 19, 29}, {31, 30},
	}
)

// encodeCrypt writes groups of digest bytes in crypt's base-64, least
// significant 6 bits first.
func encodeCrypt(out *strings.Builder, d []byte, order [][]int) {
	for _, g := range order {
		var w uint32
		var n int
		switch len(g) {
		case 3:
			w, n = uint32(d[g[0]])<<16|uint32(d[g[1]])<<8|uint32(d[g[2]]), 4
		case 2:
			w, n = uint32(d[g[0]])<<8|uint32(d[g[1]]), 3
		case 1:
			w, n = uint32(d[g[0]]), 2
		}
		for range n {
			out.WriteByte(cryptAlphabet[w&0x3f])
			w >>= 6
		}
	}
}

// shaCryptMatches reports whether password hashes to hash; known is false
// when hash is not a SHA-crypt hash this code can check.
func shaCryptMatches(password, hash string) (match, known bool) {
	got, ok := shaCrypt(password, hash)
	if !ok {
		return false, false
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(hash)) == 1, true
}
