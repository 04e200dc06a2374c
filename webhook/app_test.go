package webhook_test

import (
	"context"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/albatros-ci/albatros/forge"
	"github.com/albatros-ci/albatros/forge/forges"
	"github.com/albatros-ci/albatros/forge/forgetest"
	"github.com/albatros-ci/albatros/registry"
	"github.com/albatros-ci/albatros/registry/registrytest"
	"github.com/albatros-ci/albatros/webhook"
)

// fakeApp is the bot's GitHub App: its webhook secrets, and the installation events it
// was told of.
type fakeApp struct {
	secrets []string
	mu      sync.Mutex
	told    []forge.Install
}

func (a *fakeApp) WebhookSecrets(context.Context) ([]string, error) { return a.secrets, nil }

func (a *fakeApp) Installation(_ context.Context, ev forge.Event) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.told = append(a.told, *ev.Install)
	return ev.Install.Action + " " + ev.Install.Account, nil
}

func (a *fakeApp) events() []forge.Install {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]forge.Install(nil), a.told...)
}

// helloWorld is the repository of GitHub's examples, installed through the App's
// installation 1 (the id the examples delivered through an installation carry).
const helloWorld = "https://github.com/Codertocat/Hello-World.git"

func appIntake(t *testing.T) (*httptest.Server, *fakeApp, *fakeHandler, *webhook.Intake) {
	t.Helper()
	repos := &registrytest.Fake{Repos: map[string]*registry.Repo{
		helloWorld: {Installed: true, OrgID: 21031067, Forge: "github", AppInstallation: 1},
	}, Orgs: map[string]*registry.Org{
		// A hand-written organization entry's secret, in clear in Consul.
		"https://github.com/Codertocat": org("hand-written-org-secret"),
	}}
	app := &fakeApp{secrets: []string{"app-secret", "app-secret-before"}}
	h := &fakeHandler{}
	in := webhook.New(repos, h, quiet(), webhook.Options{App: app})
	mux := http.NewServeMux()
	mux.Handle(forges.GitHub.Path(), in.Handler(forges.GitHub))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, app, h, in
}

// postApp sends a delivery as GitHub's App webhook does.
func postApp(t *testing.T, url, event string, body []byte, secret string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url+forges.GitHub.Path(), strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", event)
	req.Header.Set("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
	if secret != "" {
		hubSig(secret)(req.Header, body)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Every one of GitHub's example payloads, signed with the App's secret, is acted on or
// ignored with a reason; a repository's event is built only when it came through the
// installation its repository is reached by (the examples without an installation did not).
func TestAppDeliveriesOfEveryExample(t *testing.T) {
	want := map[string]struct {
		code int
		says string
	}{
		"installation_created.json":                  {200, "installation: created Codertocat"},
		"installation_deleted.json":                  {200, "installation: deleted octocat"},
		"installation_suspend.json":                  {200, "installation: suspend Codertocat"},
		"installation_unsuspend.json":                {200, "installation: unsuspend Codertocat"},
		"installation_new_permissions_accepted.json": {200, "ignored: event ignored: installation 957387 new_permissions_accepted"},
		"installation_repositories_added.json":       {200, "installation: added Codertocat"},
		"installation_repositories_removed.json":     {200, "installation: removed octocat"},
		"issue_comment_created.json":                 {200, "ignored: event ignored: comment on issue #1, not a pull request"},
		"issue_comment_edited.json":                  {200, "not a pull request"},
		"issue_comment_deleted.json":                 {200, "not a pull request"},
		"ping.json":                                  {200, "pong"},
		"ping_organization.json":                     {200, "pong"},
		"pull_request_opened.json":                   {403, "bad signature or token"},
		"pull_request_opened_installation.json":      {202, "accepted: pull_request of Codertocat/Hello-World at"},
		"pull_request_synchronize.json":              {202, "accepted: pull_request"},
		"pull_request_reopened.json":                 {202, "accepted: pull_request"},
		"pull_request_closed.json":                   {202, "accepted: pull_request_closed of Codertocat/Hello-World #2"},
		"pull_request_converted_to_draft.json":       {200, "ignored: event ignored: pull request #2 converted_to_draft"},
		"pull_request_ready_for_review.json":         {200, "ignored: event ignored: pull request #2 ready_for_review"},
		"push_branch.json":                           {202, "accepted: push of Codertocat/Hello-World at 6113728f27ae82c7b1a177c8d03f9e96e0adf246"},
		"push_tag.json":                              {403, "bad signature or token"},
		"push_tag_deleted.json":                      {200, "ignored: event ignored: deletion of refs/tags/simple-tag"},
	}
	srv, app, h, in := appIntake(t)
	entries, _ := fs.ReadDir(forgetest.GitHub, ".")
	seen, accepted, installs := 0, 0, 0
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		w, ok := want[e.Name()]
		if !ok {
			t.Errorf("%s: no expectation", e.Name())
			continue
		}
		seen++
		body, _ := fs.ReadFile(forgetest.GitHub, e.Name())
		event := strings.SplitN(strings.TrimSuffix(e.Name(), ".json"), "_", 2)[0]
		switch {
		case strings.HasPrefix(e.Name(), "pull_request"):
			event = "pull_request"
		case strings.HasPrefix(e.Name(), "issue_comment"):
			event = "issue_comment"
		case strings.HasPrefix(e.Name(), "installation_repositories"):
			event = "installation_repositories"
		}
		code, answer := postApp(t, srv.URL, event, body, "app-secret")
		if code != w.code || !strings.Contains(answer, w.says) {
			t.Errorf("%s: %d %q, want %d %q", e.Name(), code, answer, w.code, w.says)
		}
		if code == http.StatusAccepted {
			accepted++
		}
		if strings.HasPrefix(answer, "installation:") {
			installs++
		}
	}
	if seen != len(want) {
		t.Errorf("%d of the %d expected examples in testdata", seen, len(want))
	}
	in.Wait()
	if n := len(h.calls()); n != accepted {
		t.Errorf("%d deliveries handled, want the %d accepted", n, accepted)
	}
	if n := len(app.events()); n != installs {
		t.Errorf("%d installation events told, want %d", n, installs)
	}
}

// Signed with anything but the App's secrets (the one before a rotation is one), or not
// signed: refused, and nothing is handled or recorded. A delivery of the repository
// through another installation than its own builds nothing.
func TestAppDeliveriesWronglySigned(t *testing.T) {
	srv, app, h, in := appIntake(t)
	push, _ := fs.ReadFile(forgetest.GitHub, "push_branch.json")
	created, _ := fs.ReadFile(forgetest.GitHub, "installation_created.json")
	for _, secret := range []string{"not-the-apps", "", "hand-written-org-secret"} {
		for event, body := range map[string][]byte{"push": push, "installation": created} {
			if code, answer := postApp(t, srv.URL, event, body, secret); code != http.StatusForbidden && code != http.StatusUnauthorized {
				t.Errorf("%s signed with %q: %d %q", event, secret, code, answer)
			}
		}
	}
	tampered := []byte(strings.Replace(string(push), "refs/heads/master", "refs/heads/mastex", 1))
	if code, _ := postApp(t, srv.URL, "push", tampered, ""); code != http.StatusUnauthorized && code != http.StatusForbidden {
		t.Errorf("tampered push: %d", code)
	}
	other := []byte(strings.Replace(string(push), `"installation": {
    "id": 1,`, `"installation": {
    "id": 2,`, 1))
	if string(other) == string(push) {
		t.Fatal("the example's installation was not found to change")
	}
	if code, _ := postApp(t, srv.URL, "push", other, "app-secret"); code != http.StatusForbidden {
		t.Errorf("a push through another installation: %d, want 403", code)
	}
	in.Wait()
	if n := len(h.calls()); n != 0 {
		t.Fatalf("%d deliveries handled", n)
	}
	if n := len(app.events()); n != 0 {
		t.Fatalf("%d installation events recorded", n)
	}
	// The secret before a rotation still signs.
	if code, answer := postApp(t, srv.URL, "push", push, "app-secret-before"); code != http.StatusAccepted {
		t.Errorf("signed with the previous secret: %d %q", code, answer)
	}
}
