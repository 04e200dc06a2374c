package gitea_test

import (
	"encoding/json"
	"io/fs"
	"net/http"
	"strings"
	"testing"

	"github.com/albatros-ci/albatros/forge"
	"github.com/albatros-ci/albatros/forge/forgetest"
	"github.com/albatros-ci/albatros/forge/gitea"
)

// seedCaptures adds every delivery captured from the real Gitea to the fuzzer's corpus,
// and a body with two repositories (the last one wins in both parses).
func seedCaptures(f *testing.F) {
	entries, err := fs.ReadDir(forgetest.Gitea, ".")
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		raw, _ := fs.ReadFile(forgetest.Gitea, e.Name())
		var c capture
		if err := json.Unmarshal(raw, &c); err != nil {
			f.Fatal(err)
		}
		f.Add(c.Event, c.EventType, []byte(c.Body))
	}
	f.Add("push", "", []byte(`{"ref":"refs/heads/main","after":"0123456789012345678901234567890123456789","repository":{"clone_url":"http://a/o/one.git","full_name":"o/one"},"repository":{"clone_url":"http://a/o/two.git","full_name":"o/two"}}`))
}

// FuzzParse: whatever the body, the parser does not panic; an event it returns is valid,
// and the repository it names (which picks the secret before the signature is checked),
// whatever its error, is the one a read of the repository alone finds: a body cannot be
// verified against one repository and build another.
func FuzzParse(f *testing.F) {
	seedCaptures(f)
	f.Fuzz(func(t *testing.T, event, eventType string, body []byte) {
		h := http.Header{}
		h.Set("X-Gitea-Event", event)
		h.Set("X-Gitea-Event-Type", eventType)
		ev, err := gitea.Parse(h, body)
		forgetest.Agree(t, ev, body, gitea.Locate)
		if err != nil {
			return
		}
		if ev.Kind != forge.KindPing {
			if verr := ev.Validate(); verr != nil {
				t.Fatalf("Parse returned an invalid event %+v: %v", ev, verr)
			}
		}
		if ev.Repo.CloneURL == "" {
			t.Fatalf("Parse returned an event without its repository: %q", body)
		}
	})
}

// FuzzVerifySignature: a body signed with the secret verifies, and no other body, secret
// or signature does.
func FuzzVerifySignature(f *testing.F) {
	f.Add([]byte(`{"ref":"refs/heads/main"}`), "secret", "other", "zz")
	f.Fuzz(func(t *testing.T, body []byte, secret, otherSecret, junk string) {
		if secret == "" {
			return // no secret never verifies: checked below
		}
		sig := gitea.Sign(body, secret)
		for name, h := range map[string]http.Header{
			"X-Gitea-Signature":   {"X-Gitea-Signature": {sig}},
			"X-Hub-Signature-256": {"X-Hub-Signature-256": {"sha256=" + sig}},
			"both":                {"X-Gitea-Signature": {sig}, "X-Hub-Signature-256": {"sha256=" + sig}},
		} {
			if err := gitea.VerifySignature(h, body, secret); err != nil {
				t.Fatalf("%s: a body signed with the secret does not verify: %v", name, err)
			}
			// HMAC pads a key with zero bytes: "k" and "k\x00" are one key.
			if strings.TrimRight(otherSecret, "\x00") != strings.TrimRight(secret, "\x00") {
				if err := gitea.VerifySignature(h, body, otherSecret); err == nil {
					t.Fatalf("%s: verified with another secret", name)
				}
			}
			if err := gitea.VerifySignature(h, append([]byte(junk), body...), secret); err == nil && junk != "" {
				t.Fatalf("%s: verified a changed body", name)
			}
		}
		if err := gitea.VerifySignature(http.Header{"X-Gitea-Signature": {junk}}, body, secret); err == nil && !strings.EqualFold(junk, sig) {
			t.Fatalf("verified the signature %q", junk)
		}
		if err := gitea.VerifySignature(http.Header{"X-Gitea-Signature": {sig}}, body, ""); err == nil {
			t.Fatal("verified with no secret")
		}
	})
}
