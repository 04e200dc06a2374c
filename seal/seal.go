// Package seal encrypts the small secrets the bot keeps (webhook secrets and repository
// secrets in Consul, the session cookies of its pages) with AES-256-GCM, under keys derived
// from ALBATROS_SECRET_KEY. Every sealed value names the key that sealed it and is bound to
// a purpose (the field it belongs to), so it cannot be opened under another key or moved to
// another field. A keyring holds the current key, which seals, and previous keys, which
// still open what they sealed: the key-rotation path.
//
// It does no I/O and keeps no state beyond its keys.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// MinKeyLength is the shortest secret key accepted, in bytes.
const MinKeyLength = 32

// prefix starts every sealed value: sealed:v1:<key id>:<base64url(nonce|ciphertext)>.
const prefix = "sealed:v1:"

// ErrOpen is returned for a value that is not sealed, was sealed by a key the keyring does
// not hold, or was altered or moved to another purpose.
var ErrOpen = errors.New("cannot open sealed value")

// Keyring seals with its current key and opens with any of its keys.
type Keyring struct {
	keys []key // keys[0] is the current one
}

type key struct {
	id   string
	aead cipher.AEAD
}

// New returns a keyring whose current key is derived from current, and which also opens
// what the previous keys sealed. Each key must be at least MinKeyLength bytes.
func New(current []byte, previous ...[]byte) (*Keyring, error) {
	k := &Keyring{}
	for i, secret := range append([][]byte{current}, previous...) {
		if len(secret) < MinKeyLength {
			if i == 0 {
				return nil, fmt.Errorf("the secret key is %d bytes, at least %d are needed", len(secret), MinKeyLength)
			}
			return nil, fmt.Errorf("previous secret key %d is %d bytes, at least %d are needed", i, len(secret), MinKeyLength)
		}
		aesKey, err := hkdf.Key(sha256.New, secret, nil, "albatros seal v1", 32)
		if err != nil {
			return nil, err
		}
		block, err := aes.NewCipher(aesKey)
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		idKey, err := hkdf.Key(sha256.New, secret, nil, "albatros seal key id", 4)
		if err != nil {
			return nil, err
		}
		k.keys = append(k.keys, key{id: hex.EncodeToString(idKey), aead: aead})
	}
	return k, nil
}

// Seal encrypts plain for purpose (a name for the field it goes in, such as
// "hook-secret:<org URL>") under the current key.
func (k *Keyring) Seal(plain []byte, purpose string) string {
	cur := k.keys[0]
	nonce := make([]byte, cur.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	out := cur.aead.Seal(nonce, nonce, plain, []byte(purpose))
	return prefix + cur.id + ":" + base64.RawURLEncoding.EncodeToString(out)
}

// Open decrypts a value Seal made for the same purpose, with the key that sealed it.
func (k *Keyring) Open(sealed, purpose string) ([]byte, error) {
	rest, ok := strings.CutPrefix(sealed, prefix)
	if !ok {
		return nil, fmt.Errorf("%w: not a sealed value", ErrOpen)
	}
	id, data, ok := strings.Cut(rest, ":")
	if !ok {
		return nil, fmt.Errorf("%w: no key id", ErrOpen)
	}
	for _, kk := range k.keys {
		if kk.id != id {
			continue
		}
		raw, err := base64.RawURLEncoding.DecodeString(data)
		if err != nil || len(raw) < kk.aead.NonceSize() {
			return nil, fmt.Errorf("%w: malformed", ErrOpen)
		}
		n := kk.aead.NonceSize()
		plain, err := kk.aead.Open(nil, raw[:n], raw[n:], []byte(purpose))
		if err != nil {
			return nil, fmt.Errorf("%w: altered, or sealed for another purpose", ErrOpen)
		}
		return plain, nil
	}
	return nil, fmt.Errorf("%w: sealed by key %s, which is neither the current nor a previous key", ErrOpen, id)
}

// Current reports whether sealed was sealed by the current key; values sealed by a previous
// key are resealed when next written.
func (k *Keyring) Current(sealed string) bool {
	return strings.HasPrefix(sealed, prefix+k.keys[0].id+":")
}
