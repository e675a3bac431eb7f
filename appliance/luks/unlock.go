package luks

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/xts"
)

// ErrWrongKey says no keyslot opened with the passphrase.
var ErrWrongKey = errors.New("no key slot opens with this passphrase")

// hashFunc returns the constructor of a LUKS hash name.
func hashFunc(name string) (func() hash.Hash, error) {
	switch strings.ToLower(name) {
	case "sha1":
		return sha1.New, nil
	case "sha256":
		return sha256.New, nil
	case "sha512":
		return sha512.New, nil
	}
	return nil, fmt.Errorf("hash %q is not supported (sha1, sha256, sha512 are)", name)
}

// sectorCipher decrypts 512-byte sectors numbered from 0.
type sectorCipher func(dst, src []byte, sector uint64)

func newSectorCipher(spec string, key []byte) (sectorCipher, error) {
	name, mode, _ := strings.Cut(spec, "-")
	if name != "aes" {
		return nil, fmt.Errorf("cipher %q is not supported (only aes-xts-plain64, aes-xts-plain, aes-cbc-essiv:sha256, aes-cbc-plain64 and aes-cbc-plain are)", spec)
	}
	switch mode {
	case "xts-plain64", "xts-plain":
		c, err := xts.NewCipher(aes.NewCipher, key)
		if err != nil {
			return nil, fmt.Errorf("cipher %s: %w", spec, err)
		}
		trunc := mode == "xts-plain"
		return func(dst, src []byte, sector uint64) {
			if trunc {
				sector &= 0xffffffff
			}
			c.Decrypt(dst, src, sector)
		}, nil
	case "cbc-essiv:sha256", "cbc-plain64", "cbc-plain":
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("cipher %s: %w", spec, err)
		}
		var essiv cipher.Block
		if mode == "cbc-essiv:sha256" {
			salt := sha256.Sum256(key)
			if essiv, err = aes.NewCipher(salt[:]); err != nil {
				return nil, err
			}
		}
		return func(dst, src []byte, sector uint64) {
			var iv [aes.BlockSize]byte
			if mode == "cbc-plain" {
				binary.LittleEndian.PutUint32(iv[:], uint32(sector))
			} else {
				binary.LittleEndian.PutUint64(iv[:], sector)
			}
			if essiv != nil {
				essiv.Encrypt(iv[:], iv[:])
			}
			cipher.NewCBCDecrypter(block, iv[:]).CryptBlocks(dst, src)
		}, nil
	}
	return nil, fmt.Errorf("cipher %q is not supported (only aes-xts-plain64, aes-xts-plain, aes-cbc-essiv:sha256, aes-cbc-plain64 and aes-cbc-plain are)", spec)
}

// Derive runs the keyslot's KDF over the passphrase. memLimitKiB bounds
// what argon2 may use (0: no bound), so a slot made on a larger machine
// (or a hostile header) fails with a message instead of exhausting memory.
func (k *KDF) Derive(pass []byte, keyLen, memLimitKiB int) ([]byte, error) {
	switch k.Type {
	case "pbkdf2":
		h, err := hashFunc(k.Hash)
		if err != nil {
			return nil, err
		}
		return pbkdf2.Key(h, string(pass), k.Salt, k.Iterations, keyLen)
	case "argon2i", "argon2id":
		if memLimitKiB > 0 && k.MemoryKiB > memLimitKiB {
			return nil, fmt.Errorf("%s needs %d MiB of memory, only %d MiB are available", k.Type, k.MemoryKiB>>10, memLimitKiB>>10)
		}
		if k.Type == "argon2i" {
			return argon2.Key(pass, k.Salt, uint32(k.Iterations), uint32(k.MemoryKiB), uint8(k.Threads), uint32(keyLen)), nil
		}
		return argon2.IDKey(pass, k.Salt, uint32(k.Iterations), uint32(k.MemoryKiB), uint8(k.Threads), uint32(keyLen)), nil
	}
	return nil, fmt.Errorf("KDF %q is not supported", k.Type)
}

// afMerge undoes the anti-forensic split of the LUKS spec: the key is the
// last stripe XORed with the diffused XOR of all the ones before it.
func afMerge(split []byte, keySize, stripes int, hashName string) ([]byte, error) {
	h, err := hashFunc(hashName)
	if err != nil {
		return nil, err
	}
	if keySize <= 0 || len(split) < keySize*stripes {
		return nil, errors.New("anti-forensic area too small")
	}
	d := make([]byte, keySize)
	for i := 0; i < stripes-1; i++ {
		subtle.XORBytes(d, d, split[i*keySize:(i+1)*keySize])
		diffuse(d, h)
	}
	key := make([]byte, keySize)
	subtle.XORBytes(key, d, split[(stripes-1)*keySize:stripes*keySize])
	clear(d)
	return key, nil
}

// diffuse hashes b in place, digest-size block by block, each block
// prefixed with its big-endian index.
func diffuse(b []byte, newHash func() hash.Hash) {
	h := newHash()
	ds := h.Size()
	var iv [4]byte
	for i, off := 0, 0; off < len(b); i, off = i+1, off+ds {
		end := min(off+ds, len(b))
		h.Reset()
		binary.BigEndian.PutUint32(iv[:], uint32(i))
		h.Write(iv[:])
		h.Write(b[off:end])
		sum := h.Sum(nil)
		copy(b[off:end], sum)
	}
}

// checkDigest reports whether key is the volume key.
func (h *Header) checkDigest(key []byte) (bool, error) {
	hf, err := hashFunc(h.digest.hash)
	if err != nil {
		return false, err
	}
	n := len(h.digest.value)
	if h.Version == 1 {
		n = luks1DigestSize
	}
	got, err := pbkdf2.Key(hf, string(key), h.digest.salt, h.digest.iterations, n)
	if err != nil {
		return false, err
	}
	return subtle.ConstantTimeCompare(got, h.digest.value[:min(n, len(h.digest.value))]) == 1, nil
}

// UnlockSlot tries the passphrase on one keyslot and returns the volume
// key, or ErrWrongKey.
func (h *Header) UnlockSlot(r io.ReaderAt, ks *Keyslot, pass []byte, memLimitKiB int) ([]byte, error) {
	areaKey, err := ks.KDF.Derive(pass, ks.AreaKey, memLimitKiB)
	if err != nil {
		return nil, fmt.Errorf("keyslot %s: %w", ks.ID, err)
	}
	defer clear(areaKey)
	dec, err := newSectorCipher(ks.Cipher, areaKey)
	if err != nil {
		return nil, fmt.Errorf("keyslot %s: %w", ks.ID, err)
	}
	area := make([]byte, ks.Size)
	defer clear(area)
	if _, err := r.ReadAt(area, ks.Offset); err != nil {
		return nil, fmt.Errorf("keyslot %s: reading its area: %w", ks.ID, err)
	}
	for s := 0; s*sectorSize < len(area); s++ {
		sec := area[s*sectorSize : (s+1)*sectorSize]
		dec(sec, sec, uint64(s))
	}
	key, err := afMerge(area, h.KeySize, ks.Stripes, ks.AFHash)
	if err != nil {
		return nil, fmt.Errorf("keyslot %s: %w", ks.ID, err)
	}
	ok, err := h.checkDigest(key)
	if err != nil || !ok {
		clear(key)
		if err != nil {
			return nil, fmt.Errorf("keyslot %s: %w", ks.ID, err)
		}
		return nil, ErrWrongKey
	}
	return key, nil
}

// Unlock tries the passphrase on every active keyslot in turn and returns
// the volume key. A passphrase no slot accepts is ErrWrongKey; problems
// with individual slots are reported only when no slot opened.
func (h *Header) Unlock(r io.ReaderAt, pass []byte, memLimitKiB int) ([]byte, error) {
	key, _, err := h.UnlockWithSlot(r, pass, memLimitKiB)
	return key, err
}

// UnlockWithSlot is Unlock, also returning the keyslot that opened.
func (h *Header) UnlockWithSlot(r io.ReaderAt, pass []byte, memLimitKiB int) ([]byte, *Keyslot, error) {
	if _, err := newSectorCipher(h.Cipher, make([]byte, h.KeySize)); err != nil {
		return nil, nil, err
	}
	if len(h.Keyslots) == 0 {
		return nil, nil, errors.New("the volume has no active key slot")
	}
	var problems []string
	for i := range h.Keyslots {
		key, err := h.UnlockSlot(r, &h.Keyslots[i], pass, memLimitKiB)
		if err == nil {
			return key, &h.Keyslots[i], nil
		}
		if !errors.Is(err, ErrWrongKey) {
			problems = append(problems, err.Error())
		}
	}
	if len(problems) == len(h.Keyslots) {
		return nil, nil, errors.New(strings.Join(problems, "; "))
	}
	return nil, nil, ErrWrongKey
}
