package seal_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/albatros-ci/albatros/seal"
)

var (
	keyA = []byte("0123456789abcdef0123456789abcdef-key-a")
	keyB = []byte("fedcba9876543210fedcba9876543210-key-b")
)

func mustNew(t *testing.T, current []byte, previous ...[]byte) *seal.Keyring {
	t.Helper()
	k, err := seal.New(current, previous...)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealOpen(t *testing.T) {
	k := mustNew(t, keyA)
	secret := []byte("whsec-4242-do-not-leak")
	s := k.Seal(secret, "hook-secret:https://git.example.com/org")
	if bytes.Contains([]byte(s), secret) || !strings.HasPrefix(s, "sealed:v1:") {
		t.Fatalf("sealed value %q", s)
	}
	if s2 := k.Seal(secret, "hook-secret:https://git.example.com/org"); s2 == s {
		t.Error("two seals of one value are equal: the nonce is not random")
	}
	got, err := k.Open(s, "hook-secret:https://git.example.com/org")
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if !k.Current(s) {
		t.Error("Current = false for a value sealed by the current key")
	}
}

func TestOpenRefuses(t *testing.T) {
	k := mustNew(t, keyA)
	s := k.Seal([]byte("value"), "secret:org/DEPLOY")
	tampered := []byte(s)
	tampered[len(tampered)-3] ^= 1
	cases := map[string]struct{ value, purpose string }{
		"another purpose": {s, "secret:org/OTHER"},
		"altered":         {string(tampered), "secret:org/DEPLOY"},
		"clear text":      {"value", "secret:org/DEPLOY"},
		"truncated":       {s[:20], "secret:org/DEPLOY"},
		"another key's":   {mustNew(t, keyB).Seal([]byte("value"), "secret:org/DEPLOY"), "secret:org/DEPLOY"},
		"not base64":      {"sealed:v1:" + strings.Split(s, ":")[2] + ":!!!", "secret:org/DEPLOY"},
		"empty":           {"", "secret:org/DEPLOY"},
		"no key id":       {"sealed:v1:", "secret:org/DEPLOY"},
		"unknown key id":  {"sealed:v1:00000000:" + strings.Split(s, ":")[3], "secret:org/DEPLOY"},
	}
	for name, c := range cases {
		if got, err := k.Open(c.value, c.purpose); !errors.Is(err, seal.ErrOpen) {
			t.Errorf("%s: Open = %q, %v; want ErrOpen", name, got, err)
		}
	}
}

// Rotation: a keyring with a new current key and the old one as previous opens what the old
// one sealed, seals with the new one, and says which values to reseal.
func TestKeyRotation(t *testing.T) {
	old := mustNew(t, keyA)
	sealedOld := old.Seal([]byte("value"), "p")
	rotated := mustNew(t, keyB, keyA)
	if got, err := rotated.Open(sealedOld, "p"); err != nil || string(got) != "value" {
		t.Fatalf("the rotated keyring cannot open the old key's value: %q, %v", got, err)
	}
	if rotated.Current(sealedOld) {
		t.Error("a value sealed by the previous key counts as current")
	}
	sealedNew := rotated.Seal([]byte("value"), "p")
	if !rotated.Current(sealedNew) {
		t.Error("a value sealed by the rotated keyring is not current")
	}
	if _, err := old.Open(sealedNew, "p"); !errors.Is(err, seal.ErrOpen) {
		t.Errorf("the old keyring opens the new key's value: %v", err)
	}
	// Once the old key is dropped, its values no longer open.
	if _, err := mustNew(t, keyB).Open(sealedOld, "p"); !errors.Is(err, seal.ErrOpen) {
		t.Errorf("a keyring without the old key opens its value: %v", err)
	}
}

func TestShortKeysAreRefused(t *testing.T) {
	if _, err := seal.New([]byte("too short")); err == nil {
		t.Error("a 9-byte key was accepted")
	}
	if _, err := seal.New(keyA, []byte("short")); err == nil {
		t.Error("a short previous key was accepted")
	}
}
