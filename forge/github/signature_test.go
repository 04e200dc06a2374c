package github_test

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"hash"
	"io/fs"
	"net/http"
	"strings"
	"testing"

	"github.com/albatros-ci/albatros/forge"
	"github.com/albatros-ci/albatros/forge/github"
)

const secret = "It's a Secret to Everybody"

// sign returns the hex HMAC of body under key, computed here independently of the code
// under test. GitHub sends "sha256=" + sign(sha256.New, …) in X-Hub-Signature-256.
func sign(h func() hash.Hash, key string, body []byte) string {
	mac := hmac.New(h, []byte(key))
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

// signed returns the headers of a delivery of body as GitHub signs it: both signatures.
func signed(body []byte, key string) http.Header {
	h := http.Header{}
	h.Set("X-Hub-Signature-256", "sha256="+sign(sha256.New, key, body))
	h.Set("X-Hub-Signature", "sha1="+sign(sha1.New, key, body))
	return h
}

// GitHub's documented test vector (docs.github.com, "Validating webhook deliveries").
func TestVerifySignatureGitHubExample(t *testing.T) {
	h := http.Header{}
	h.Set("X-Hub-Signature-256", "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")
	if err := github.VerifySignature(h, []byte("Hello, World!"), secret); err != nil {
		t.Errorf("VerifySignature of GitHub's example: %v", err)
	}
}

func TestVerifySignature(t *testing.T) {
	entries, err := fs.ReadDir(payloads, ".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") { // README.md
			continue
		}
		body := payload(t, e.Name())
		altered := []byte(strings.Replace(strings.Replace(string(body), "Codertocat", "Codertocas", 1), "octocat", "octocas", 1))
		if string(altered) == string(body) {
			t.Fatalf("%s: nothing to alter", e.Name())
		}
		good := sign(sha256.New, secret, body)
		only := func(k, v string) http.Header { h := http.Header{}; h.Set(k, v); return h }

		tests := []struct {
			name    string
			h       http.Header
			body    []byte
			secret  string
			wantErr error // nil, forge.ErrSignature or forge.ErrUnsigned
		}{
			{"as GitHub signs", signed(body, secret), body, secret, nil},
			{"sha256 alone", only("X-Hub-Signature-256", "sha256="+good), body, secret, nil},
			// hex reads either case; GitHub sends lowercase.
			{"uppercase hex", only("X-Hub-Signature-256", "sha256="+strings.ToUpper(good)), body, secret, nil},
			// The SHA-1 header is not checked, so a wrong one next to a good SHA-256 passes.
			{"wrong sha1 beside good sha256", func() http.Header {
				h := signed(body, secret)
				h.Set("X-Hub-Signature", "sha1="+sign(sha1.New, "other", body))
				return h
			}(), body, secret, nil},

			{"wrong secret", signed(body, "another secret"), body, secret, forge.ErrSignature},
			{"altered body", signed(body, secret), altered, secret, forge.ErrSignature},
			{"truncated", only("X-Hub-Signature-256", "sha256="+good[:len(good)-2]), body, secret, forge.ErrSignature},
			{"not hex", only("X-Hub-Signature-256", "sha256=zz"+good[2:]), body, secret, forge.ErrSignature},
			{"empty hex", only("X-Hub-Signature-256", "sha256="), body, secret, forge.ErrSignature},
			{"no prefix", only("X-Hub-Signature-256", good), body, secret, forge.ErrSignature},
			{"uppercase prefix", only("X-Hub-Signature-256", "SHA256="+good), body, secret, forge.ErrSignature},
			// go-github would verify these with SHA-1 or SHA-512; the header is SHA-256's.
			{"valid sha1 in the sha256 header", only("X-Hub-Signature-256", "sha1="+sign(sha1.New, secret, body)), body, secret, forge.ErrSignature},
			{"valid sha512 in the sha256 header", only("X-Hub-Signature-256", "sha512="+sign(sha512.New, secret, body)), body, secret, forge.ErrSignature},

			{"missing header", http.Header{}, body, secret, forge.ErrUnsigned},
			{"empty header", only("X-Hub-Signature-256", ""), body, secret, forge.ErrUnsigned},
			{"sha1 header only", only("X-Hub-Signature", "sha1="+sign(sha1.New, secret, body)), body, secret, forge.ErrUnsigned},

			{"empty secret, signed with it", signed(body, ""), body, "", forge.ErrSignature},
			{"empty secret, unsigned", http.Header{}, body, "", forge.ErrSignature},
		}
		for _, tt := range tests {
			t.Run(e.Name()+"/"+tt.name, func(t *testing.T) {
				err := github.VerifySignature(tt.h, tt.body, tt.secret)
				if tt.wantErr == nil {
					if err != nil {
						t.Fatalf("VerifySignature: %v", err)
					}
					return
				}
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("VerifySignature = %v, want %v", err, tt.wantErr)
				}
				// The two failures are told apart: one is a 401, the other a 403.
				for _, other := range []error{forge.ErrSignature, forge.ErrUnsigned} {
					if other != tt.wantErr && errors.Is(err, other) {
						t.Errorf("VerifySignature = %v, which is also %v", err, other)
					}
				}
			})
		}
	}
}

func TestVerifySignatureNoSecretSaysSo(t *testing.T) {
	err := github.VerifySignature(http.Header{}, nil, "")
	if err == nil || !strings.Contains(err.Error(), "no webhook secret configured") {
		t.Errorf("VerifySignature = %v, want one saying no webhook secret is configured", err)
	}
}
