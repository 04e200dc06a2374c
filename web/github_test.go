package web

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/albatros-ci/albatros/forge"
	"github.com/albatros-ci/albatros/forge/github"
	"github.com/albatros-ci/albatros/forge/github/githubtest"
	"github.com/albatros-ci/albatros/install"
	"github.com/albatros-ci/albatros/orchestrator"
	"github.com/albatros-ci/albatros/registry"
)

// appRecords holds installations in memory: the GitHub App's on acme.
type appRecords struct {
	mu    sync.Mutex
	insts map[string]*registry.Installation
}

func (a *appRecords) Repo(ctx context.Context, cloneURL string) (*registry.Repo, error) {
	orgURL, _ := registry.OrgURL(cloneURL)
	inst, err := a.Installation(ctx, orgURL)
	if err != nil {
		return &registry.Repo{}, nil
	}
	return &registry.Repo{Installed: true, OrgID: inst.OrgID, Forge: inst.Forge, AppInstallation: inst.InstallationID}, nil
}

func (a *appRecords) Installation(_ context.Context, orgURL string) (*registry.Installation, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if inst, ok := a.insts[orgURL]; ok {
		cp := *inst
		return &cp, nil
	}
	return nil, registry.ErrNotFound
}

func (a *appRecords) PutInstallation(_ context.Context, inst *registry.Installation) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	cp := *inst
	a.insts[inst.OrgURL()] = &cp
	return nil
}

func (a *appRecords) SetSecret(inst *registry.Installation, repo, name, value string) error {
	s := inst.SettingsOf(repo)
	if s.Secrets == nil {
		s.Secrets = map[string]string{}
	}
	s.Secrets[name] = "sealed:" + value
	inst.SetSettings(repo, s)
	return nil
}

// liveBuilds is a Nomad holding these builds.
type liveBuilds []orchestrator.Summary

func (b liveBuilds) Recent(context.Context, string, int) ([]orchestrator.Summary, error) {
	return b, nil
}
func (liveBuilds) CheckBuilder(context.Context, orchestrator.Builder) error        { return nil }
func (liveBuilds) CheckMeta(context.Context, orchestrator.Builder, []string) error { return nil }

// githubHarness is the fake GitHub with the App installed on the organization acme (its
// owner alice; mallory a reader of its private repository secret), and a replica of the
// bot serving both Gitea's pages (where alice owns a Gitea organization acme too) and the
// App's.
type githubHarness struct {
	*harness
	gh      *githubtest.Server
	app     *github.App
	records *appRecords
	builds  liveBuilds
}

func newGitHubHarness(t *testing.T) *githubHarness {
	h := &githubHarness{harness: newHarness(t)}
	gh, err := githubtest.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gh.Close)
	h.gh = gh
	for _, u := range []string{"alice", "mallory"} {
		gh.AddUser(u)
	}
	orgID := gh.AddOrg("acme", "alice")
	gh.AddRepo("acme", "secret", true, "")
	gh.SetPermission("acme/secret", "mallory", "read")
	id := gh.Install("acme")
	if h.app, err = github.NewApp(github.AppConfig{ID: gh.App.ID, PrivateKey: gh.App.KeyPEM, APIURL: gh.API}); err != nil {
		t.Fatal(err)
	}
	h.records = &appRecords{insts: map[string]*registry.Installation{
		gh.URL + "/acme": {Forge: "github", URL: gh.URL, Org: "acme", OrgID: orgID, InstallationID: id, InstalledBy: "alice"},
	}}
	giteaID, _ := h.bot.OrgID(context.Background(), "acme")
	h.records.insts[h.gitea.URL+"/acme"] = &registry.Installation{Forge: "gitea", URL: h.gitea.URL, Org: "acme", OrgID: giteaID, InstalledBy: "alice"}
	return h
}

func (h *githubHarness) replica(baseURL string) *replica {
	cfg := h.config(baseURL)
	cfg.UserClient = func(string) install.Owner { return h.user }
	cfg.Records, cfg.Builds = h.records, h.builds
	cfg.Forge = func(entry *registry.Repo, cloneURL string) (forge.Forge, forge.Repo, error) {
		repo, err := github.RepoFromCloneURL(cloneURL)
		if err != nil {
			return nil, forge.Repo{}, err
		}
		c, err := h.app.Installation(entry.AppInstallation)
		return c, repo, err
	}
	cfg.GitHub = &GitHubConfig{
		WebURL: h.gh.URL,
		OAuth:  func(context.Context) (string, string, error) { return h.gh.App.ClientID, h.gh.App.ClientSecret, nil },
		Slug:   h.app.Slug,
		Installation: func(_ context.Context, inst *registry.Installation) (forge.Forge, error) {
			return h.app.Installation(inst.InstallationID)
		},
		User: func(token string) GitHubUser {
			c, err := github.New(h.gh.API, token, nil)
			if err != nil {
				h.t.Fatal(err)
			}
			return c
		},
	}
	return serve(New(cfg), h.gh.URL+"/acme/secret.git")
}

// signInGitHub signs login in with GitHub from target, through the fake's authorize page
// as a browser goes: the bot's redirect, GitHub's form, GitHub's redirect back.
func (h *githubHarness) signInGitHub(t *testing.T, rp *replica, target, login string) *http.Cookie {
	t.Helper()
	w := rp.do("GET", target)
	for w.Code == http.StatusSeeOther && strings.HasPrefix(w.Header().Get("Location"), "/") {
		w = rp.do("GET", w.Header().Get("Location"))
	}
	auth, err := url.Parse(w.Header().Get("Location"))
	if err != nil || !strings.HasPrefix(auth.String(), h.gh.URL+"/login/oauth/authorize") {
		t.Fatalf("%s sends to %q, not GitHub's authorize page (%d)", target, w.Header().Get("Location"), w.Code)
	}
	flowCookie := cookieOf(t, w, rp.flowCookie)
	q := auth.Query()
	if q.Get("client_id") != h.gh.App.ClientID || q.Get("redirect_uri") != "http://bot.test"+GitHubRedirectPath || q.Get("code_challenge") == "" {
		t.Fatalf("authorize URL %s", auth)
	}
	// GitHub's page: the user signs in and authorizes; GitHub sends the browser back.
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.PostForm(h.gh.URL+"/login/oauth/authorize", url.Values{"client_id": {q.Get("client_id")}, "redirect_uri": {q.Get("redirect_uri")}, "state": {q.Get("state")}, "login": {login}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	back, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || back.Path != GitHubRedirectPath {
		t.Fatalf("GitHub sends back to %q", resp.Header.Get("Location"))
	}
	w = rp.do("GET", back.RequestURI(), flowCookie)
	if w.Code != http.StatusSeeOther {
		t.Fatalf("callback: %d\n%s", w.Code, w.Body)
	}
	return rp.sessionOf(t, w)
}

// Signing in with GitHub: the App's accounts' pages for who administers them, 403 for
// anyone else; a login of one forge is nobody on the other, both ways.
func TestGitHubSignInAndAccountPages(t *testing.T) {
	h := newGitHubHarness(t)
	rp := h.replica("http://bot.test")
	alice := h.signInGitHub(t, rp, "/github/orgs", "alice")
	if s := rp.open(t, alice); s.Forge != "github" || s.Login != "alice" || !s.Listed || len(s.Orgs) != 1 || s.Orgs[0] != "acme" {
		t.Fatalf("session %+v", s)
	}
	if w := rp.do("GET", "/github/orgs", alice); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `href="/github/orgs/acme"`) {
		t.Fatalf("/github/orgs: %d\n%s", w.Code, w.Body)
	}
	w := rp.do("GET", "/github/orgs/acme", alice)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "secret") || !strings.Contains(w.Body.String(), "installation ") {
		t.Fatalf("/github/orgs/acme for its owner: %d\n%s", w.Code, w.Body)
	}
	mallory := h.signInGitHub(t, rp, "/github/orgs", "mallory")
	if w := rp.do("GET", "/github/orgs/acme", mallory); w.Code != http.StatusForbidden {
		t.Fatalf("/github/orgs/acme for a reader: %d", w.Code)
	}
	// alice on GitHub is not alice on Gitea, who owns Gitea's acme: sent to sign in there.
	if w := rp.do("GET", "/orgs/acme", alice); w.Code != http.StatusSeeOther || !strings.HasPrefix(w.Header().Get("Location"), "/login?") {
		t.Fatalf("a GitHub session on a Gitea organization's page: %d %s", w.Code, w.Header().Get("Location"))
	}
	giteaAlice := rp.sessionOf(t, rp.signIn(t, "/login?next=/orgs"))
	if w := rp.do("GET", "/orgs/acme", giteaAlice); w.Code != http.StatusOK {
		t.Fatalf("Gitea's alice on Gitea's acme: %d", w.Code)
	}
	if w := rp.do("GET", "/github/orgs/acme", giteaAlice); w.Code != http.StatusSeeOther || !strings.HasPrefix(w.Header().Get("Location"), "/login/github?") {
		t.Fatalf("a Gitea session on a GitHub account's page: %d %s", w.Code, w.Header().Get("Location"))
	}
	// A cross-site post changes nothing.
	req := httptest.NewRequest("POST", "/github/orgs/acme/secrets", strings.NewReader("name=X&value=y"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	req.AddCookie(alice)
	cw := httptest.NewRecorder()
	rp.mux.ServeHTTP(cw, req)
	if cw.Code != http.StatusForbidden {
		t.Fatalf("cross-site post: %d", cw.Code)
	}
	// The owner's post sets the secret.
	req = httptest.NewRequest("POST", "/github/orgs/acme/secrets", strings.NewReader("name=DEPLOY&value=v"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(alice)
	cw = httptest.NewRecorder()
	rp.mux.ServeHTTP(cw, req)
	if cw.Code != http.StatusSeeOther {
		t.Fatalf("the owner's secret: %d\n%s", cw.Code, cw.Body)
	}
	inst, _ := h.records.Installation(context.Background(), h.gh.URL+"/acme")
	if inst.Settings.Secrets["DEPLOY"] == "" {
		t.Fatal("the secret was not set")
	}
}

// A private GitHub repository's log: to a reader signed in with GitHub; a stranger gets
// 403; a Gitea session of the same login is sent to sign in with GitHub.
func TestGitHubPrivateLog(t *testing.T) {
	h := newGitHubHarness(t)
	h.gh.AddUser("stranger")
	rp := h.replica("http://bot.test")
	if w := rp.do("GET", "/logs/ci/x"); w.Code != http.StatusSeeOther || !strings.HasPrefix(w.Header().Get("Location"), "/login/github?") {
		t.Fatalf("anonymous: %d %s", w.Code, w.Header().Get("Location"))
	}
	mallory := h.signInGitHub(t, rp, "/logs/ci/x", "mallory")
	if w := rp.do("GET", "/logs/ci/x", mallory); w.Code != http.StatusOK || w.Body.String() != "private build output" {
		t.Fatalf("a reader: %d %s", w.Code, w.Body)
	}
	stranger := h.signInGitHub(t, rp, "/logs/ci/x", "stranger")
	if w := rp.do("GET", "/logs/ci/x", stranger); w.Code != http.StatusForbidden {
		t.Fatalf("a stranger: %d", w.Code)
	}
	giteaAlice := rp.sessionOf(t, rp.signIn(t, "/login?next=/orgs"))
	if w := rp.do("GET", "/logs/ci/x", giteaAlice); w.Code != http.StatusSeeOther || !strings.HasPrefix(w.Header().Get("Location"), "/login/github?") {
		t.Fatalf("a Gitea session: %d %s", w.Code, w.Header().Get("Location"))
	}
}

// An organization renamed on GitHub gives up its login: whoever takes it is not the
// installation's account. Its pages are held for them (and everyone), by id; nor are the
// private logs of its old repositories served under a public repository of the same name.
func TestGitHubRenamedAccountsNameTaken(t *testing.T) {
	h := newGitHubHarness(t)
	rp := h.replica("http://bot.test")
	alice := h.signInGitHub(t, rp, "/github/orgs", "alice")
	if w := rp.do("GET", "/github/orgs/acme", alice); w.Code != http.StatusOK {
		t.Fatalf("before the rename: %d", w.Code)
	}
	h.gh.Rename("acme", "acme-corp")
	h.gh.AddUser("acme") // the freed login, taken
	h.gh.AddRepo("acme", "secret", false, "")
	rp = h.replica("http://bot.test") // a minute later: nothing cached
	squatter := h.signInGitHub(t, rp, "/github/orgs", "acme")
	for _, target := range []string{"/github/orgs/acme", "/github/orgs/acme/repos/secret"} {
		if w := rp.do("GET", target, squatter); w.Code == http.StatusOK {
			t.Errorf("the login's new holder on %s: %d\n%s", target, w.Code, w.Body)
		}
	}
	req := httptest.NewRequest("POST", "/github/orgs/acme/settings", strings.NewReader("users=acme"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(squatter)
	cw := httptest.NewRecorder()
	rp.mux.ServeHTTP(cw, req)
	if inst, _ := h.records.Installation(context.Background(), h.gh.URL+"/acme"); cw.Code == http.StatusSeeOther || len(inst.Settings.Trusted.Users) != 0 {
		t.Fatalf("the login's new holder saved settings: %d %+v", cw.Code, inst.Settings.Trusted)
	}
	if w := rp.do("GET", "/logs/ci/x"); w.Code != http.StatusForbidden {
		t.Fatalf("the old private repository's log under a public one of its name: %d %s", w.Code, w.Body)
	}
}

// An organization's page lists its own builds, not those of an earlier holder of its
// name still in Nomad.
func TestGitHubAccountPageListsItsOwnBuilds(t *testing.T) {
	h := newGitHubHarness(t)
	inst, _ := h.records.Installation(context.Background(), h.gh.URL+"/acme")
	meta := func(branch string) map[string]string {
		return map[string]string{"REPO_URL": h.gh.URL + "/acme/secret.git", "COMMIT": strings.Repeat("a", 40), "BRANCH": branch, "FLAVOR": "default"}
	}
	h.builds = liveBuilds{
		{Namespace: "ci", ID: "builder/dispatch-albatros-1-a", Meta: meta("its-own"), State: "running", Holder: inst.OrgID, HolderKnown: true},
		{Namespace: "ci", ID: "builder/dispatch-albatros-1-b", Meta: meta("earlier-holders"), State: "running", Holder: inst.OrgID + 1, HolderKnown: true},
	}
	rp := h.replica("http://bot.test")
	alice := h.signInGitHub(t, rp, "/github/orgs", "alice")
	w := rp.do("GET", "/github/orgs/acme", alice)
	if body := w.Body.String(); w.Code != http.StatusOK || !strings.Contains(body, "its-own") || strings.Contains(body, "earlier-holders") {
		t.Fatalf("the account's page: %d\n%s", w.Code, body)
	}
}
