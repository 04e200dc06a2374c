package gitea_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/albatros-ci/albatros/forge"
	"github.com/albatros-ci/albatros/forge/gitea"
)

const secret = "webhook-secret"

var body = []byte(`{"ref":"refs/heads/main","after":"0123456789abcdef0123456789abcdef01234567"}`)

// hmacHex is the signature Gitea sends, computed here independently of the code under test.
func hmacHex(key string, b []byte) string {
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write(b)
	return hex.EncodeToString(mac.Sum(nil))
}

// headers builds a delivery's headers from name, value pairs.
func headers(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

func TestSign(t *testing.T) {
	if got, want := gitea.Sign(body, secret), hmacHex(secret, body); got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
}

func TestVerifySignature(t *testing.T) {
	good := hmacHex(secret, body)
	other := hmacHex("another-secret", body)
	tampered := hmacHex(secret, append([]byte(" "), body...))

	tests := []struct {
		name    string
		h       http.Header
		secret  string
		wantErr error // nil, forge.ErrSignature or forge.ErrUnsigned
	}{
		{"X-Gitea-Signature alone", headers("X-Gitea-Signature", good), secret, nil},
		{"X-Hub-Signature-256 alone", headers("X-Hub-Signature-256", "sha256="+good), secret, nil},
		{"both valid", headers("X-Gitea-Signature", good, "X-Hub-Signature-256", "sha256="+good), secret, nil},
		// hex.DecodeString reads either case, so an uppercase signature is the same bytes
		// and verifies; Gitea itself sends lowercase.
		{"uppercase X-Gitea-Signature", headers("X-Gitea-Signature", strings.ToUpper(good)), secret, nil},
		{"uppercase X-Hub-Signature-256", headers("X-Hub-Signature-256", "sha256="+strings.ToUpper(good)), secret, nil},

		{"valid Gitea, invalid Hub", headers("X-Gitea-Signature", good, "X-Hub-Signature-256", "sha256="+other), secret, forge.ErrSignature},
		{"invalid Gitea, valid Hub", headers("X-Gitea-Signature", other, "X-Hub-Signature-256", "sha256="+good), secret, forge.ErrSignature},
		{"wrong secret", headers("X-Gitea-Signature", other), secret, forge.ErrSignature},
		{"other body", headers("X-Gitea-Signature", tampered), secret, forge.ErrSignature},
		{"truncated", headers("X-Gitea-Signature", good[:len(good)-2]), secret, forge.ErrSignature},
		{"Gitea not hex", headers("X-Gitea-Signature", "zz"+good[2:]), secret, forge.ErrSignature},
		{"Gitea odd length", headers("X-Gitea-Signature", good[1:]), secret, forge.ErrSignature},
		{"Hub not hex", headers("X-Hub-Signature-256", "sha256=not-hex"), secret, forge.ErrSignature},
		{"Hub empty hex", headers("X-Hub-Signature-256", "sha256="), secret, forge.ErrSignature},
		{"Hub with sha1= prefix", headers("X-Hub-Signature-256", "sha1="+good), secret, forge.ErrSignature},
		{"Hub without prefix", headers("X-Hub-Signature-256", good), secret, forge.ErrSignature},
		{"Hub with uppercase prefix", headers("X-Hub-Signature-256", "SHA256="+good), secret, forge.ErrSignature},
		{"Gitea with sha256= prefix", headers("X-Gitea-Signature", "sha256="+good), secret, forge.ErrSignature},

		{"no header", http.Header{}, secret, forge.ErrUnsigned},
		{"empty headers", headers("X-Gitea-Signature", "", "X-Hub-Signature-256", ""), secret, forge.ErrUnsigned},
		// The SHA-1 header is not one the bot verifies: alone, it does not sign the delivery.
		{"only X-Hub-Signature (sha1)", headers("X-Hub-Signature", "sha1="+good), secret, forge.ErrUnsigned},

		{"empty secret, matching empty-key HMAC", headers("X-Gitea-Signature", hmacHex("", body), "X-Hub-Signature-256", "sha256="+hmacHex("", body)), "", forge.ErrSignature},
		{"empty secret, no header", http.Header{}, "", forge.ErrSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := gitea.VerifySignature(tt.h, body, tt.secret)
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

// A failure names the header that failed, for the log.
func TestVerifySignatureNamesTheHeader(t *testing.T) {
	good := hmacHex(secret, body)
	err := gitea.VerifySignature(headers("X-Gitea-Signature", good, "X-Hub-Signature-256", "sha256=00"), body, secret)
	if err == nil || !strings.Contains(err.Error(), "X-Hub-Signature-256") {
		t.Errorf("VerifySignature = %v, want an error naming X-Hub-Signature-256", err)
	}
	err = gitea.VerifySignature(headers("X-Gitea-Signature", "00", "X-Hub-Signature-256", "sha256="+good), body, secret)
	if err == nil || !strings.Contains(err.Error(), "X-Gitea-Signature") {
		t.Errorf("VerifySignature = %v, want an error naming X-Gitea-Signature", err)
	}
}

func TestVerifySignatureEmptyBody(t *testing.T) {
	if err := gitea.VerifySignature(headers("X-Gitea-Signature", hmacHex(secret, nil)), nil, secret); err != nil {
		t.Errorf("VerifySignature of an empty body: %v", err)
	}
}

func TestRepoFromCloneURL(t *testing.T) {
	tests := []struct {
		name, base, clone string
		want              forge.Repo
	}{
		{
			name: "root", base: "http://h:3000/", clone: "http://h:3000/o/r.git",
			want: forge.Repo{CloneURL: "http://h:3000/o/r.git", FullName: "o/r", Owner: "o", Name: "r", HTMLURL: "http://h:3000/o/r"},
		},
		{
			name: "base without slash", base: "http://h:3000", clone: "http://h:3000/o/r.git",
			want: forge.Repo{CloneURL: "http://h:3000/o/r.git", FullName: "o/r", Owner: "o", Name: "r", HTMLURL: "http://h:3000/o/r"},
		},
		{
			name: "no .git", base: "https://git.example.com/", clone: "https://git.example.com/org/my.repo",
			want: forge.Repo{CloneURL: "https://git.example.com/org/my.repo", FullName: "org/my.repo", Owner: "org", Name: "my.repo", HTMLURL: "https://git.example.com/org/my.repo"},
		},
		{
			name: "sub-path", base: "http://h/git/", clone: "http://h/git/o/r.git",
			want: forge.Repo{CloneURL: "http://h/git/o/r.git", FullName: "o/r", Owner: "o", Name: "r", HTMLURL: "http://h/git/o/r"},
		},
		{
			name: "sub-path without slash", base: "http://h/git", clone: "http://h/git/o/r.git",
			want: forge.Repo{CloneURL: "http://h/git/o/r.git", FullName: "o/r", Owner: "o", Name: "r", HTMLURL: "http://h/git/o/r"},
		},
		{
			// The clone URL stays as given (it is the registry's key); the web page carries
			// no credentials.
			name: "user info", base: "http://h:3000/", clone: "http://bot:s3cret@h:3000/o/r.git",
			want: forge.Repo{CloneURL: "http://bot:s3cret@h:3000/o/r.git", FullName: "o/r", Owner: "o", Name: "r", HTMLURL: "http://h:3000/o/r"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := gitea.RepoFromCloneURL(tt.base, tt.clone)
			if err != nil {
				t.Fatalf("RepoFromCloneURL(%q, %q): %v", tt.base, tt.clone, err)
			}
			if got != tt.want {
				t.Errorf("RepoFromCloneURL(%q, %q) =\n%+v, want\n%+v", tt.base, tt.clone, got, tt.want)
			}
		})
	}
}

func TestRepoFromCloneURLErrors(t *testing.T) {
	tests := []struct{ name, base, clone string }{
		{"other host", "http://h:3000/", "http://other:3000/o/r.git"},
		{"other port", "http://h:3000/", "http://h:3001/o/r.git"},
		{"outside the sub-path", "http://h/git/", "http://h/o/r.git"},
		{"sibling of the sub-path", "http://h/git/", "http://h/gitea/o/r.git"},
		{"too many segments", "http://h:3000/", "http://h:3000/o/r/extra.git"},
		{"too many segments under a sub-path", "http://h/git/", "http://h/git/a/o/r.git"},
		{"trailing slash", "http://h:3000/", "http://h:3000/o/r/"},
		{"owner only", "http://h:3000/", "http://h:3000/r.git"},
		{"empty owner", "http://h:3000/", "http://h:3000//r.git"},
		{"empty name", "http://h:3000/", "http://h:3000/o/.git"},
		{"base itself", "http://h:3000/", "http://h:3000/"},
		{"bad clone url", "http://h:3000/", "http://h:3000/o/%zz.git"},
		{"bad base url", "http://h:port/", "http://h:3000/o/r.git"},
		{"ssh clone url", "http://h:3000/", "git@h:o/r.git"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := gitea.RepoFromCloneURL(tt.base, tt.clone); err == nil {
				t.Errorf("RepoFromCloneURL(%q, %q) = %+v, want an error", tt.base, tt.clone, got)
			}
		})
	}
}
