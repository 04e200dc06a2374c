package gitea

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"

	"github.com/albatros-ci/albatros/forge"
)

// VerifySignature checks a delivery's HMAC-SHA256 signature against secret. Gitea signs in
// X-Gitea-Signature (hex) and, like GitHub, in X-Hub-Signature-256 ("sha256=" + hex). At
// least one must be present, and every one present must verify. An empty secret never
// verifies: a repository without a webhook secret cannot receive signed deliveries.
func VerifySignature(h http.Header, body []byte, secret string) error {
	if secret == "" {
		return fmt.Errorf("%w: no webhook secret configured", forge.ErrSignature)
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	want := mac.Sum(nil)

	checked := 0
	if s := h.Get("X-Gitea-Signature"); s != "" {
		if err := equalHex(s, want); err != nil {
			return fmt.Errorf("%w: X-Gitea-Signature %v", forge.ErrSignature, err)
		}
		checked++
	}
	if s := h.Get("X-Hub-Signature-256"); s != "" {
		hexSig, ok := strings.CutPrefix(s, "sha256=")
		if !ok {
			return fmt.Errorf("%w: X-Hub-Signature-256 is not sha256=<hex>", forge.ErrSignature)
		}
		if err := equalHex(hexSig, want); err != nil {
			return fmt.Errorf("%w: X-Hub-Signature-256 %v", forge.ErrSignature, err)
		}
		checked++
	}
	if checked == 0 {
		return fmt.Errorf("%w: no X-Gitea-Signature or X-Hub-Signature-256 header", forge.ErrUnsigned)
	}
	return nil
}

func equalHex(sig string, want []byte) error {
	got, err := hex.DecodeString(sig)
	if err != nil {
		return fmt.Errorf("is not hex")
	}
	if !hmac.Equal(got, want) {
		return fmt.Errorf("does not match")
	}
	return nil
}

// Sign returns the value of X-Gitea-Signature for body, as Gitea computes it.
func Sign(body []byte, secret string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}
