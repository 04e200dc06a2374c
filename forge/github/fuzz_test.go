package github_test

import (
	"io/fs"
	"net/http"
	"strings"
	"testing"

	"github.com/albatros-ci/albatros/forge"
	"github.com/albatros-ci/albatros/forge/forgetest"
	"github.com/albatros-ci/albatros/forge/github"
)

// FuzzParse: whatever the body, the parser does not panic; an event it returns is valid,
// and the repository it names (which picks the secret before the signature is checked),
// whatever its error, is the one a read of the repository alone finds. Seeded with
// GitHub's published examples.
func FuzzParse(f *testing.F) {
	entries, err := fs.ReadDir(forgetest.GitHub, ".")
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		body, _ := fs.ReadFile(forgetest.GitHub, e.Name())
		event := "push"
		for _, ev := range []string{"pull_request", "ping", "issue_comment"} {
			if strings.HasPrefix(e.Name(), ev) {
				event = ev
			}
		}
		f.Add(event, body)
	}
	f.Add("push", []byte(`{"ref":"refs/heads/main","after":"0123456789012345678901234567890123456789","repository":{"clone_url":"https://github.com/o/one.git","full_name":"o/one"},"repository":{"clone_url":"https://github.com/o/two.git","full_name":"o/two"}}`))
	f.Fuzz(func(t *testing.T, event string, body []byte) {
		h := http.Header{}
		h.Set("X-GitHub-Event", event)
		ev, err := github.Parse(h, body)
		forgetest.Agree(t, ev, body, github.Locate)
		if err != nil || ev.Kind == forge.KindPing {
			return
		}
		if verr := ev.Validate(); verr != nil {
			t.Fatalf("Parse returned an invalid event %+v: %v", ev, verr)
		}
	})
}

// FuzzVerifySignature: a body signed as GitHub signs verifies with its secret only.
func FuzzVerifySignature(f *testing.F) {
	f.Add([]byte(`{"zen":"hi"}`), "secret", "other", "junk")
	f.Fuzz(func(t *testing.T, body []byte, key, otherSecret, junk string) {
		if key == "" {
			return
		}
		secret := key
		h := signed(body, secret)
		if err := github.VerifySignature(h, body, secret); err != nil {
			t.Fatalf("a body signed with the secret does not verify: %v", err)
		}
		// HMAC pads a key with zero bytes: "k" and "k\x00" are one key.
		if strings.TrimRight(otherSecret, "\x00") != strings.TrimRight(secret, "\x00") {
			if err := github.VerifySignature(h, body, otherSecret); err == nil {
				t.Fatal("verified with another secret")
			}
		}
		if junk != "" {
			if err := github.VerifySignature(h, append([]byte(junk), body...), secret); err == nil {
				t.Fatal("verified a changed body")
			}
		}
		if err := github.VerifySignature(h, body, ""); err == nil {
			t.Fatal("verified with no secret")
		}
	})
}
