package webhook_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/albatros-ci/albatros/forge"
	"github.com/albatros-ci/albatros/forge/forgetest"
	"github.com/albatros-ci/albatros/registry"
	"github.com/albatros-ci/albatros/registry/registrytest"
	"github.com/albatros-ci/albatros/webhook"
)

const (
	ghCloneURL = "https://github.com/Codertocat/Hello-World.git"
	ghOrgURL   = "https://github.com/Codertocat"
)

// githubSign signs body as GitHub does: HMAC-SHA256, hex, "sha256=" prefix.
func githubSign(body []byte, secret string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

func postGitHub(t *testing.T, url, event string, body []byte, header map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", event)
	req.Header.Set("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestIntakeGitHub(t *testing.T) {
	example := func(name string) []byte {
		b, err := fs.ReadFile(forgetest.GitHub, name)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	push, tag, pr, ping, comment := example("push_branch.json"), example("push_tag.json"), example("pull_request_opened.json"), example("ping.json"), example("issue_comment_created.json")
	pingRepo := "https://github.com/Octocoders/Hello-World.git"

	cases := []struct {
		name    string
		event   string
		body    []byte
		header  map[string]string
		orgOnly bool // the secret is the organization's
		code    int
		kind    forge.Kind
		commit  string
	}{
		{"push", "push", push, map[string]string{"X-Hub-Signature-256": githubSign(push, repoSecret)}, false, http.StatusAccepted, forge.KindPush, "6113728f27ae82c7b1a177c8d03f9e96e0adf246"},
		{"tag", "push", tag, map[string]string{"X-Hub-Signature-256": githubSign(tag, repoSecret)}, false, http.StatusAccepted, forge.KindTag, "6113728f27ae82c7b1a177c8d03f9e96e0adf246"},
		{"pull request", "pull_request", pr, map[string]string{"X-Hub-Signature-256": githubSign(pr, repoSecret)}, false, http.StatusAccepted, forge.KindPullRequest, "ec26c3e57ca3a959ca5aad62de7213c562f8c821"},
		{"organization's secret", "push", push, map[string]string{"X-Hub-Signature-256": githubSign(push, orgSecret)}, true, http.StatusAccepted, forge.KindPush, "6113728f27ae82c7b1a177c8d03f9e96e0adf246"},
		{"wrong secret", "push", push, map[string]string{"X-Hub-Signature-256": githubSign(push, "nope")}, false, http.StatusForbidden, "", ""},
		{"no signature", "push", push, nil, false, http.StatusUnauthorized, "", ""},
		{"SHA-1 signature only", "push", push, map[string]string{"X-Hub-Signature": "sha1=0000000000000000000000000000000000000000"}, false, http.StatusUnauthorized, "", ""},
		{"Gitea's header is not GitHub's", "push", push, map[string]string{"X-Gitea-Signature": strings.TrimPrefix(githubSign(push, repoSecret), "sha256=")}, false, http.StatusUnauthorized, "", ""},
		{"ping", "ping", ping, map[string]string{"X-Hub-Signature-256": githubSign(ping, repoSecret)}, false, http.StatusOK, "", ""},
		{"issue comment ignored", "issue_comment", comment, map[string]string{"X-Hub-Signature-256": githubSign(comment, repoSecret)}, false, http.StatusOK, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			repos := &registrytest.Fake{Repos: map[string]*registry.Repo{}, Orgs: map[string]*registry.Org{}}
			e := entry(repoSecret, "")
			if c.orgOnly {
				e = entry("", "")
				repos.Orgs[ghOrgURL] = org(orgSecret)
			}
			repos.Repos[ghCloneURL] = e
			repos.Repos[pingRepo] = e
			h := &fakeHandler{}
			in := webhook.New(repos, h, quiet(), webhook.Options{})
			srv := httptest.NewServer(in.GitHub())
			defer srv.Close()

			code, answer := postGitHub(t, srv.URL, c.event, c.body, c.header)
			in.Wait()
			if code != c.code {
				t.Fatalf("answered %d %q, want %d", code, answer, c.code)
			}
			calls := h.calls()
			if c.kind == "" {
				if len(calls) != 0 {
					t.Fatalf("handed on %+v", calls)
				}
				return
			}
			if len(calls) != 1 || calls[0].ev.Kind != c.kind || calls[0].ev.Commit != c.commit || calls[0].ev.Sender != "Codertocat" ||
				calls[0].ev.Repo.CloneURL != ghCloneURL || calls[0].ev.Delivery != "72d3162e-cc78-11e3-81ab-4c9367dc0958" || calls[0].entry != e {
				t.Fatalf("handed on %+v", calls)
			}
		})
	}
	// An unknown repository is refused before its signature is looked at, as a bad signature
	// is: probing does not tell which repositories are registered.
	in := webhook.New(&registrytest.Fake{}, &fakeHandler{}, quiet(), webhook.Options{})
	srv := httptest.NewServer(in.GitHub())
	defer srv.Close()
	if code, _ := postGitHub(t, srv.URL, "push", push, map[string]string{"X-Hub-Signature-256": githubSign(push, repoSecret)}); code != http.StatusForbidden {
		t.Fatalf("unknown repository: %d", code)
	}
}
