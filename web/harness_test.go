package web

import (
	"context"
	"encoding/json"
	"hash/fnv"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"golang.org/x/oauth2"

	"github.com/albatros-ci/albatros/forge"
	"github.com/albatros-ci/albatros/install"
	"github.com/albatros-ci/albatros/registry"
	"github.com/albatros-ci/albatros/registry/registrytest"
	"github.com/albatros-ci/albatros/seal"
)

// What stores sign-outs: the registry, in Consul, and its fake.
var (
	_ sessions = (*registry.Registry)(nil)
	_ sessions = (*registrytest.Sessions)(nil)
)

// fakeGitea is Gitea's OAuth2 provider as the callback uses it: its token endpoint gives a
// token for a code sent with a PKCE verifier, and its introspection endpoint answers the
// scopes of grant, the user's grant of the bot's application, which Gitea 1.26 keeps
// from the user's first authorization whatever later ones ask.
type fakeGitea struct {
	*httptest.Server

	mu             sync.Mutex
	grant          string
	introspections int
}

func newFakeGitea(t *testing.T) *fakeGitea {
	g := &fakeGitea{grant: "read:user write:organization"}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /login/oauth/access_token", func(w http.ResponseWriter, r *http.Request) {
		code := r.FormValue("code")
		if code == "" || r.FormValue("code_verifier") == "" || r.FormValue("client_id") != "id" || r.FormValue("client_secret") != "secret" {
			http.Error(w, `{"error":"invalid_grant"}`, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "token-of-" + code, "token_type": "bearer", "expires_in": 3600})
	})
	mux.HandleFunc("POST /login/oauth/introspect", func(w http.ResponseWriter, r *http.Request) {
		if id, secret, ok := r.BasicAuth(); !ok || id != "id" || secret != "secret" {
			http.Error(w, "no valid authorization", http.StatusUnauthorized)
			return
		}
		g.mu.Lock()
		defer g.mu.Unlock()
		g.introspections++
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"active": strings.HasPrefix(r.FormValue("token"), "token-of-"), "scope": g.grant})
	})
	g.Server = httptest.NewServer(mux)
	t.Cleanup(g.Close)
	return g
}

func (g *fakeGitea) setGrant(scope string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.grant = scope
}

func (g *fakeGitea) introspected() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.introspections
}

// giteaAPI is Gitea's API as one account sees it (the signing-in user's token, or the
// bot's): owners lists each organization's owners, and every call is recorded.
type giteaAPI struct {
	login  string
	owners map[string][]string

	mu    sync.Mutex
	calls []string
}

var (
	_ install.Owner = (*giteaAPI)(nil)
	_ BotClient     = (*giteaAPI)(nil)
)

func (a *giteaAPI) record(call string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls = append(a.calls, call)
}

// called returns the names of the calls made so far, in order.
func (a *giteaAPI) called() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.calls)
}

func (a *giteaAPI) Me(context.Context) (string, error) { a.record("Me"); return a.login, nil }

// MyOrgs lists the organizations login owns, and one it is only a member of.
func (a *giteaAPI) MyOrgs(context.Context) ([]string, error) {
	a.record("MyOrgs")
	out := []string{"members-only"}
	for org, owners := range a.owners {
		if slices.Contains(owners, a.login) {
			out = append(out, org)
		}
	}
	return out, nil
}

func (a *giteaAPI) OrgName(_ context.Context, org string) (string, error) {
	a.record("OrgName")
	return org, nil
}

func (a *giteaAPI) IsOwner(_ context.Context, org, user string) (bool, error) {
	a.record("IsOwner")
	return slices.Contains(a.owners[org], user), nil
}

func (a *giteaAPI) AddOwner(context.Context, string, string) error { a.record("AddOwner"); return nil }

func (a *giteaAPI) RemoveOwner(context.Context, string, string) error {
	a.record("RemoveOwner")
	return nil
}

// OrgID is the id of org: organizations are told apart by their names here.
func (a *giteaAPI) OrgID(_ context.Context, org string) (int64, error) {
	a.record("OrgID")
	h := fnv.New32a()
	h.Write([]byte(org))
	return int64(h.Sum32()) + 1, nil
}

func (a *giteaAPI) OrgRepos(context.Context, string) ([]forge.Repo, error) {
	a.record("OrgRepos")
	return nil, nil
}

// fakeInstaller installs by recording who asked.
type fakeInstaller struct {
	gitea string

	mu       sync.Mutex
	installs []string
}

func (in *fakeInstaller) Install(ctx context.Context, user install.Owner, org string) (*registry.Installation, error) {
	login, err := user.Me(ctx)
	if err != nil {
		return nil, err
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	in.installs = append(in.installs, org+" by "+login)
	return &registry.Installation{Forge: "gitea", URL: in.gitea, Org: org, InstalledBy: login}, nil
}

func (in *fakeInstaller) Uninstall(context.Context, string) error         { return nil }
func (in *fakeInstaller) Check(context.Context, string) ([]string, error) { return nil, nil }
func (in *fakeInstaller) OrgURL(org string) string                        { return in.gitea + "/" + org }
func (in *fakeInstaller) IdentifyTrusted(context.Context, string, *registry.Trusted) error {
	return nil
}

func (in *fakeInstaller) installed() []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return slices.Clone(in.installs)
}

// fakeRecords is a registry without installations, where every repository has an entry.
type fakeRecords struct{}

func (fakeRecords) Repo(context.Context, string) (*registry.Repo, error) {
	return &registry.Repo{}, nil
}

func (fakeRecords) Installation(context.Context, string) (*registry.Installation, error) {
	return nil, registry.ErrNotFound
}

func (fakeRecords) PutInstallation(context.Context, *registry.Installation) error { return nil }

func (fakeRecords) SetSecret(*registry.Installation, string, string, string) error { return nil }

// privateRepo is a private repository on Gitea, readable by readers only.
type privateRepo struct {
	forge.Unsupported
	readers []string
}

var _ forge.RepoReaders = privateRepo{}

func (privateRepo) SetStatus(context.Context, forge.Status) error       { return nil }
func (privateRepo) IsPrivate(context.Context, forge.Repo) (bool, error) { return true, nil }
func (p privateRepo) CanRead(_ context.Context, _ forge.Repo, user string) (bool, error) {
	return slices.Contains(p.readers, user), nil
}

// harness is a Gitea, a Consul (its fake sign-outs) and the bot's keys, shared by the
// replicas of the bot that web makes.
type harness struct {
	// repoForge, when set, is the private repository's forge instead of privateRepo.
	repoForge forge.Forge
	t         *testing.T
	gitea     *fakeGitea
	sessions  *registrytest.Sessions
	keys      *seal.Keyring
	// user is the API as the user signing in sees it, with their token; bot, as the bot.
	user, bot *giteaAPI
	installer *fakeInstaller
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	k, err := seal.New([]byte(key1))
	if err != nil {
		t.Fatal(err)
	}
	g := newFakeGitea(t)
	owners := map[string][]string{"acme": {"alice"}}
	return &harness{
		t: t, gitea: g, sessions: &registrytest.Sessions{}, keys: k,
		user:      &giteaAPI{login: "alice", owners: owners},
		bot:       &giteaAPI{login: "albatros", owners: owners},
		installer: &fakeInstaller{gitea: g.URL},
	}
}

// privateCloneURL is the repository whose logs the harness's log route serves.
func (h *harness) privateCloneURL() string { return h.gitea.URL + "/acme/secret.git" }

// replica is one bot at baseURL, with its pages and a log route of the private
// repository, as the server registers them.
type replica struct {
	*Web
	mux *http.ServeMux
}

func (h *harness) replica(baseURL string) *replica {
	return serve(New(h.config(baseURL)), h.privateCloneURL())
}

// config is the pages' configuration of a replica at baseURL: the harness's Gitea, its
// bot account and installer, and the private repository's forge.
func (h *harness) config(baseURL string) Config {
	return Config{
		BaseURL: baseURL, GiteaURL: h.gitea.URL, Keys: h.keys, Sessions: h.sessions,
		OAuth: &oauth2.Config{
			ClientID: "id", ClientSecret: "secret", RedirectURL: baseURL + RedirectPath,
			Endpoint: oauth2.Endpoint{AuthURL: h.gitea.URL + "/login/oauth/authorize", TokenURL: h.gitea.URL + "/login/oauth/access_token", AuthStyle: oauth2.AuthStyleInParams},
		},
		Bot: h.bot, BotLogin: h.bot.login,
		UserClient: func(token string) install.Owner {
			if !strings.HasPrefix(token, "token-of-") {
				h.t.Errorf("a user client made with %q, not the exchanged token", token)
			}
			return h.user
		},
		Installer: h.installer, Records: fakeRecords{},
		Forge: func(*registry.Repo, string) (forge.Forge, forge.Repo, error) {
			f := forge.Forge(privateRepo{readers: []string{"alice"}})
			if h.repoForge != nil {
				f = h.repoForge
			}
			return f, forge.Repo{Owner: "acme", Name: "secret", FullName: "acme/secret"}, nil
		},
		Log: slog.New(slog.DiscardHandler),
	}
}

// serve routes the pages of wb, and a log route of the private repository at cloneURL,
// as the server registers them.
func serve(wb *Web, cloneURL string) *replica {
	mux := http.NewServeMux()
	wb.Register(mux)
	mux.HandleFunc("GET /logs/{ns}/{job...}", func(w http.ResponseWriter, r *http.Request) {
		if wb.AllowLog(w, r, cloneURL) {
			_, _ = w.Write([]byte("private build output"))
		}
	})
	return &replica{wb, mux}
}

// do sends a request to the replica, with cookies, and returns the answer.
func (rp *replica) do(method, target string, cookies ...*http.Cookie) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, nil)
	for _, c := range cookies {
		req.AddCookie(c)
	}
	w := httptest.NewRecorder()
	rp.mux.ServeHTTP(w, req)
	return w
}

// authorize starts a sign-in at target (a /login URL, or a page that sends there) and
// returns Gitea's authorize URL with the flow cookie.
func (rp *replica) authorize(t *testing.T, target string) (*url.URL, *http.Cookie) {
	t.Helper()
	w := rp.do("GET", target)
	for w.Code == http.StatusSeeOther && strings.HasPrefix(w.Header().Get("Location"), "/") {
		w = rp.do("GET", w.Header().Get("Location"))
	}
	if w.Code != http.StatusSeeOther {
		t.Fatalf("%s: %d, want a redirect to Gitea\n%s", target, w.Code, w.Body)
	}
	u, err := url.Parse(w.Header().Get("Location"))
	if err != nil || u.Path != "/login/oauth/authorize" {
		t.Fatalf("%s sends to %s, not Gitea's authorize page", target, w.Header().Get("Location"))
	}
	return u, cookieOf(t, w, rp.flowCookie)
}

// signIn signs the harness's user in through Gitea from target, as Gitea sends the browser
// back once authorized, and returns the callback's answer, with the cookies of the
// browser (its session, if any, first).
func (rp *replica) signIn(t *testing.T, target string, cookies ...*http.Cookie) *httptest.ResponseRecorder {
	t.Helper()
	u, flowCookie := rp.authorize(t, target)
	q := url.Values{"code": {"code-1"}, "state": {u.Query().Get("state")}}
	return rp.do("GET", RedirectPath+"?"+q.Encode(), append(cookies, flowCookie)...)
}

// sessionOf is the session cookie w set.
func (rp *replica) sessionOf(t *testing.T, w *httptest.ResponseRecorder) *http.Cookie {
	t.Helper()
	return cookieOf(t, w, rp.sessionCookie)
}

// open is the session that c holds, opened with the bot's keys.
func (rp *replica) open(t *testing.T, c *http.Cookie) session {
	t.Helper()
	var s session
	if err := rp.openJSON(c.Value, sessionPurpose, &s); err != nil {
		t.Fatalf("the session cookie does not open: %v", err)
	}
	return s
}
