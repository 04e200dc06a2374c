// Package web is the bot's interface for people: the home page with its "Install Albatros"
// button, the sign-in through Gitea's OAuth2 provider, the list of a user's organizations
// with Install and Uninstall, the settings pages of an installed organization and of its
// repositories (trusted users and teams, secrets, flavors, builder) with their recent
// builds, and the check of who may read a private repository's build logs.
//
// It keeps nothing in memory that matters: a session is a sealed cookie, an OAuth2 flow's
// state travels sealed in the flow itself, a sign-out is recorded in Consul for every
// replica, and every admin request checks on Gitea, with the bot's own account, that the
// user owns the organization (cached for a minute at most). Each sign-in asks Gitea only
// the scopes its flow uses the user's token for (ReaderScopes, OwnerScopes).
// State-changing requests are POSTs behind net/http's cross-origin protection.
package web

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/albatros-ci/albatros/forge"
	"github.com/albatros-ci/albatros/install"
	"github.com/albatros-ci/albatros/orchestrator"
	"github.com/albatros-ci/albatros/registry"
	"github.com/albatros-ci/albatros/seal"
)

// records is the registry as the pages use it.
type records interface {
	Repo(ctx context.Context, cloneURL string) (*registry.Repo, error)
	Installation(ctx context.Context, orgURL string) (*registry.Installation, error)
	PutInstallation(ctx context.Context, inst *registry.Installation) error
	SetSecret(inst *registry.Installation, repo, name, value string) error
}

// installer is package install as the pages use it.
type installer interface {
	Install(ctx context.Context, user install.Owner, org string) (*registry.Installation, error)
	Uninstall(ctx context.Context, org string) error
	Check(ctx context.Context, org string) ([]string, error)
	OrgURL(org string) string
	IdentifyTrusted(ctx context.Context, org string, t *registry.Trusted) error
}

// builds is the orchestrator as the pages use it.
type builds interface {
	Recent(ctx context.Context, repoPrefix string, limit int) ([]orchestrator.Summary, error)
	CheckBuilder(ctx context.Context, b orchestrator.Builder) error
	// CheckMeta checks that the builder declares keys (a repository's run parameters)
	// optional.
	CheckMeta(ctx context.Context, b orchestrator.Builder, keys []string) error
}

// scheduleStates are the schedules' states as the pages show them (the registry).
type scheduleStates interface {
	ScheduleState(ctx context.Context, cloneURL, name string) (registry.ScheduleState, error)
}

// sessions records the sessions signed out before they expire, for every replica of the
// bot (the registry, in Consul).
type sessions interface {
	// Revoke records the session id as signed out until until, when it expires anyway.
	Revoke(ctx context.Context, id string, until time.Time) error
	// Revoked reports whether the session id was signed out; an error means it is not
	// known.
	Revoked(ctx context.Context, id string) (bool, error)
}

// BotClient is the bot account's Gitea client as the pages use it.
type BotClient interface {
	forge.OrgOwners
	forge.OrgRepos
}

// ForgeFor finds a registered repository's forge client (forges.Forges.For).
type ForgeFor func(entry *registry.Repo, cloneURL string) (forge.Forge, forge.Repo, error)

// Config is what the pages are made of.
type Config struct {
	// BaseURL is the bot's public URL (ALBATROS_URL); GiteaURL the Gitea it works with.
	BaseURL, GiteaURL string
	// OAuth is the bot's OAuth2 application on Gitea; nil when installing is not set up,
	// and DisabledReason then says why. Its Scopes are not used: each sign-in asks its own.
	OAuth          *oauth2.Config
	DisabledReason string
	// Keys seal the session cookies and the OAuth2 state.
	Keys *seal.Keyring
	// Sessions records sign-outs; signing in needs it.
	Sessions sessions
	// Bot is the bot account's client, BotLogin its login.
	Bot      BotClient
	BotLogin string
	// UserClient makes a client acting with a user's OAuth2 token, for installing.
	UserClient func(token string) install.Owner
	Installer  installer
	Records    records
	Builds     builds
	Forge      ForgeFor
	// DefaultBuilder is the builder of repositories that name none; BuilderNamespaces the
	// Nomad namespaces an organization's owners may choose a builder from.
	DefaultBuilder    orchestrator.Builder
	BuilderNamespaces []string
	// Archive, when set, adds the builds Nomad has collected to the pages' recent builds,
	// and serves the history pages and the badges.
	Archive archived
	// Lines, when set, tells the badges which build is a branch's newest.
	Lines lines
	// Schedules, when set, tells a repository's page how its schedules went.
	Schedules scheduleStates
	// Runs, when set, starts the builds asked with the Run button of a repository's
	// history page.
	Runs runner
	// GitHub, when set, is the bot's GitHub App: sign-in with GitHub, its accounts'
	// settings pages, and its creation through the manifest flow.
	GitHub *GitHubConfig
	Log    *slog.Logger
}

// Web serves the pages.
type Web struct {
	cfg    Config
	secure bool // cookies only over https, when the bot is served over https
	// sessionCookie and flowCookie are the cookies' names: __Host- ones over https.
	sessionCookie, flowCookie string
	owners                    ttlCache
	access                    ttlCache
	signedOut                 revocations
	badges                    badgeCache
	defaults                  defaultBranches
}

// New returns the pages of cfg. Without cfg.Sessions, nobody can sign in: a sign-out could
// not be recorded.
func New(cfg Config) *Web {
	cfg.BaseURL = strings.TrimSuffix(cfg.BaseURL, "/")
	cfg.GiteaURL = strings.TrimSuffix(cfg.GiteaURL, "/")
	if cfg.GitHub != nil {
		cfg.GitHub.WebURL = strings.TrimSuffix(cfg.GitHub.WebURL, "/")
	}
	if cfg.OAuth != nil && cfg.Sessions == nil {
		cfg.OAuth, cfg.DisabledReason = nil, "signing in needs Consul, where sign-outs are recorded"
	}
	wb := &Web{cfg: cfg, secure: strings.HasPrefix(cfg.BaseURL, "https://"), sessionCookie: sessionName, flowCookie: flowName}
	if wb.secure {
		wb.sessionCookie, wb.flowCookie = hostPrefix+sessionName, hostPrefix+flowName
	}
	return wb
}

// Route is one of the pages' routes.
type Route struct {
	Method, Pattern string
	// Admin routes need a signed-in owner of the organization: an anonymous visitor is
	// sent to sign in, anyone else gets 403.
	Admin bool
	// listed: the session's list of owned organizations suffices (Install, which checks
	// again with the user's token).
	listed bool
	handle func(w http.ResponseWriter, r *http.Request)
}

// Routes lists every route of the pages, for the router and for tests that go over them.
func (wb *Web) Routes() []Route {
	return []Route{
		{"GET", "/{$}", false, false, wb.home},
		{"GET", "/login", false, false, wb.login},
		{"GET", "/login/gitea/callback", false, false, wb.callback},
		{"POST", "/logout", false, false, wb.logout},
		{"GET", "/orgs", false, false, wb.ownerList(wb.orgs)},
		{"POST", "/orgs/{org}/install", true, true, wb.install},
		{"POST", "/orgs/{org}/uninstall", true, false, wb.uninstall},
		{"POST", "/orgs/{org}/check", true, false, wb.check},
		{"GET", "/orgs/{org}", true, false, wb.orgPage},
		{"POST", "/orgs/{org}/settings", true, false, wb.saveSettings},
		{"POST", "/orgs/{org}/secrets", true, false, wb.setSecret},
		{"POST", "/orgs/{org}/secrets/delete", true, false, wb.deleteSecret},
		{"GET", "/orgs/{org}/repos/{repo}", true, false, wb.repoPage},
		{"POST", "/orgs/{org}/repos/{repo}/settings", true, false, wb.saveSettings},
		{"POST", "/orgs/{org}/repos/{repo}/secrets", true, false, wb.setSecret},
		{"POST", "/orgs/{org}/repos/{repo}/secrets/delete", true, false, wb.deleteSecret},
		{"GET", "/builds/{owner}/{repo}", false, false, wb.history},
		{"POST", "/builds/{owner}/{repo}/run", false, false, wb.run},

		{"GET", "/login/github", false, false, wb.githubLogin},
		{"GET", "/login/github/callback", false, false, wb.githubCallback},
		{"GET", "/github/setup", false, false, wb.githubSetup},
		{"POST", "/github/setup", false, false, wb.githubSetupStart},
		{"GET", "/github/setup/callback", false, false, wb.githubSetupDone},
		{"GET", "/github/orgs", false, false, wb.githubOrgs},
		{"GET", "/github/builds/{owner}/{repo}", false, false, wb.history},
		{"POST", "/github/builds/{owner}/{repo}/run", false, false, wb.run},
		{"GET", "/github/orgs/{org}", true, false, wb.orgPage},
		{"POST", "/github/orgs/{org}/settings", true, false, wb.saveSettings},
		{"POST", "/github/orgs/{org}/secrets", true, false, wb.setSecret},
		{"POST", "/github/orgs/{org}/secrets/delete", true, false, wb.deleteSecret},
		{"GET", "/github/orgs/{org}/repos/{repo}", true, false, wb.repoPage},
		{"POST", "/github/orgs/{org}/repos/{repo}/settings", true, false, wb.saveSettings},
		{"POST", "/github/orgs/{org}/repos/{repo}/secrets", true, false, wb.setSecret},
		{"POST", "/github/orgs/{org}/repos/{repo}/secrets/delete", true, false, wb.deleteSecret},
	}
}

// Register adds the pages to mux, behind cross-origin protection: a POST from another site
// is refused with 403 before it reaches a handler.
func (wb *Web) Register(mux *http.ServeMux) {
	cop := http.NewCrossOriginProtection()
	for _, rt := range wb.Routes() {
		h := http.Handler(http.HandlerFunc(rt.handle))
		if rt.Admin {
			h = wb.owner(h, rt.listed)
		}
		mux.Handle(rt.Method+" "+rt.Pattern, cop.Handler(wb.securityHeaders(memoSession(h))))
	}
	// A badge is an image other sites show: its own headers, no session.
	mux.HandleFunc("GET /badge/{owner}/{file}", wb.badge)
	mux.HandleFunc("GET /github/badge/{owner}/{file}", wb.badge)
}

func (wb *Web) securityHeaders(h http.Handler) http.Handler {
	// Forms post to the bot, whose answer may redirect to Gitea's authorize page: browsers
	// hold redirects after a form post to form-action too.
	csp := "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; form-action 'self'"
	if wb.cfg.GiteaURL != "" {
		csp += " " + wb.cfg.GiteaURL
	}
	if wb.cfg.GitHub != nil {
		// The manifest's form posts to GitHub; sign-ins redirect there.
		csp += " " + strings.TrimSuffix(wb.cfg.GitHub.WebURL, "/")
	}
	csp += "; frame-ancestors 'none'"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", csp)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "same-origin")
		hd.Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}

// ttlCache remembers answers for a minute at most.
type ttlCache struct {
	mu sync.Mutex
	m  map[string]cached
}

type cached struct {
	ok bool
	at time.Time
}

// maxAge is how long a check on Gitea is trusted.
const maxAge = time.Minute

func (c *ttlCache) get(key string) (ok, found bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, found := c.m[key]
	if !found || time.Since(e.at) > maxAge {
		return false, false
	}
	return e.ok, true
}

func (c *ttlCache) put(key string, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) > 10000 {
		c.m = map[string]cached{}
	}
	c.m[key] = cached{ok, time.Now()}
}
