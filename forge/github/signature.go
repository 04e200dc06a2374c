package github

import (
	"fmt"
	"net/http"
	"strings"

	gh "github.com/google/go-github/v93/github"

	"github.com/albatros-ci/albatros/forge"
)

// VerifySignature checks a delivery's HMAC-SHA256 signature against secret. Only
// X-Hub-Signature-256 ("sha256=" + hex) is accepted: GitHub's SHA-1 X-Hub-Signature, kept for
// old receivers, does not sign a delivery for the bot, alone or next to the SHA-256 one. An
// empty secret never verifies: a repository without a webhook secret cannot receive signed
// deliveries.
func VerifySignature(h http.Header, body []byte, secret string) error {
	if secret == "" {
		return fmt.Errorf("%w: no webhook secret configured", forge.ErrSignature)
	}
	sig := h.Get(gh.SHA256SignatureHeader)
	if sig == "" {
		return fmt.Errorf("%w: no %s header", forge.ErrUnsigned, gh.SHA256SignatureHeader)
	}
	// go-github's ValidateSignature takes the hash from the prefix and would check a
	// "sha1=" or "sha512=" value too; the header promises SHA-256, so nothing else passes.
	if !strings.HasPrefix(sig, "sha256=") {
		return fmt.Errorf("%w: %s is not sha256=<hex>", forge.ErrSignature, gh.SHA256SignatureHeader)
	}
	if err := gh.ValidateSignature(sig, body, []byte(secret)); err != nil {
		return fmt.Errorf("%w: %s: %v", forge.ErrSignature, gh.SHA256SignatureHeader, err)
	}
	return nil
}
