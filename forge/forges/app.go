package forges

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/albatros-ci/albatros/forge"
	"github.com/albatros-ci/albatros/forge/github"
	"github.com/albatros-ci/albatros/registry"
)

// AppSettings are the bot's GitHub App as its source has them.
type AppSettings struct {
	ID   int64
	Slug string
	Key  []byte
	// WebhookSecrets sign the App's deliveries: the current one first, then the one
	// before it while it is rotated.
	WebhookSecrets         []string
	ClientID, ClientSecret string
	// WebURL and APIURL are the GitHub it lives on.
	WebURL, APIURL string
}

// ErrNoApp is returned when the bot has no GitHub App (yet).
var ErrNoApp = errors.New("the bot has no GitHub App: create it on the bot's /github/setup page, or set ALBATROS_GITHUB_APP_ID and its key")

// AppLoader reads the App's settings and a version that changes whenever they do; an
// error wrapping ErrNoApp when there is none.
type AppLoader func(ctx context.Context) (AppSettings, uint64, error)

// FixedApp loads settings given once (the operator's environment).
func FixedApp(s AppSettings) AppLoader {
	return func(context.Context) (AppSettings, uint64, error) { return s, 1, nil }
}

// RecordedApp loads the App recorded in the registry (made through the manifest flow),
// with secrets opened. The webhook secrets given (the operator's, rotating the recorded
// one: the new one, then the previous, which may be the recorded one) replace the
// recorded one: dropping the previous retires it.
func RecordedApp(reg interface {
	GitHubApp(ctx context.Context) (*registry.GitHubAppOpen, error)
}, apiURL string, secrets ...string) AppLoader {
	return func(ctx context.Context) (AppSettings, uint64, error) {
		a, err := reg.GitHubApp(ctx)
		if errors.Is(err, registry.ErrNotFound) {
			return AppSettings{}, 0, ErrNoApp
		}
		if err != nil {
			return AppSettings{}, 0, err
		}
		api := a.APIURL
		if api == "" {
			api = apiURL
		}
		webhookSecrets := []string{a.WebhookSecret}
		if len(secrets) > 0 {
			webhookSecrets = slices.Clone(secrets)
		}
		return AppSettings{ID: a.ID, Slug: a.Slug, Key: a.Key, WebhookSecrets: webhookSecrets, ClientID: a.ClientID, ClientSecret: a.ClientSecret,
			WebURL: a.WebURL, APIURL: api}, a.Version, nil
	}
}

// GitHubApp is the bot's GitHub App: its settings as the loader has them now, and the
// App acting with them, made again when they change (its installations' clients and
// tokens with it). Safe for concurrent use.
type GitHubApp struct {
	load AppLoader
	http *http.Client

	mu       sync.Mutex
	version  uint64
	settings AppSettings
	app      *github.App
}

// NewGitHubApp returns the App that load reads, acting through hc.
func NewGitHubApp(load AppLoader, hc *http.Client) *GitHubApp {
	return &GitHubApp{load: load, http: hc}
}

// Current returns the App and its settings as they are now.
func (g *GitHubApp) Current(ctx context.Context) (*github.App, AppSettings, error) {
	s, version, err := g.load(ctx)
	if err != nil {
		return nil, AppSettings{}, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.app != nil && version == g.version {
		return g.app, g.settings, nil
	}
	app, err := github.NewApp(github.AppConfig{ID: s.ID, PrivateKey: s.Key, APIURL: s.APIURL, HTTP: g.http})
	if err != nil {
		return nil, AppSettings{}, err
	}
	g.app, g.settings, g.version = app, s, version
	return app, s, nil
}

// WebhookSecrets returns the secrets the App's deliveries may be signed with; none when
// the bot has no App.
func (g *GitHubApp) WebhookSecrets(ctx context.Context) ([]string, error) {
	_, s, err := g.Current(ctx)
	if errors.Is(err, ErrNoApp) {
		return nil, nil
	}
	return s.WebhookSecrets, err
}

// Installation returns the client of the App's installation id.
func (g *GitHubApp) Installation(ctx context.Context, id int64) (forge.Forge, error) {
	app, _, err := g.Current(ctx)
	if err != nil {
		return nil, err
	}
	c, err := app.Installation(id)
	if err != nil {
		return nil, fmt.Errorf("github app installation %d: %w", id, err)
	}
	return c, nil
}

// Forget drops the client of installation id, uninstalled.
func (g *GitHubApp) Forget(id int64) {
	g.mu.Lock()
	app := g.app
	g.mu.Unlock()
	if app != nil {
		app.Forget(id)
	}
}

// GitHubUser is a client of the GitHub API at apiURL acting with a signed-in user's token.
func GitHubUser(apiURL, token string, hc *http.Client) (*github.Client, error) {
	return github.New(apiURL, token, hc)
}

// ConvertManifest trades the code of GitHub's manifest flow for the App GitHub created,
// as the registry records it (secrets open, to be sealed there).
func ConvertManifest(ctx context.Context, webURL, apiURL, code string, hc *http.Client) (registry.GitHubAppOpen, error) {
	c, err := github.ConvertManifest(ctx, apiURL, code, hc)
	if err != nil {
		return registry.GitHubAppOpen{}, err
	}
	return registry.GitHubAppOpen{
		GitHubApp: registry.GitHubApp{ID: c.ID, Slug: c.Slug, Owner: c.Owner, HTMLURL: c.HTMLURL, WebURL: webURL, APIURL: apiURL,
			ClientID: c.ClientID, CreatedAt: time.Now().UTC().Truncate(time.Second)},
		Key: c.PEM, WebhookSecret: c.WebhookSecret, ClientSecret: c.ClientSecret,
	}, nil
}

// Slug is the App's name in URLs.
func (g *GitHubApp) Slug(ctx context.Context) (string, error) {
	app, _, err := g.Current(ctx)
	if err != nil {
		return "", err
	}
	return app.Slug(ctx)
}

// OAuth is the App's OAuth client, for signing in with GitHub.
func (g *GitHubApp) OAuth(ctx context.Context) (id, secret string, err error) {
	_, s, err := g.Current(ctx)
	if err != nil {
		return "", "", err
	}
	if s.ClientID == "" || s.ClientSecret == "" {
		return "", "", errors.New("the GitHub App's OAuth client is not set (ALBATROS_GITHUB_CLIENT_ID, ALBATROS_GITHUB_CLIENT_SECRET)")
	}
	return s.ClientID, s.ClientSecret, nil
}

// Installations lists the App's installations as GitHub has them now, the repositories of
// the accounts served.
func (g *GitHubApp) Installations(ctx context.Context, served func(login string, id int64) bool) ([]forge.Install, error) {
	app, _, err := g.Current(ctx)
	if err != nil {
		return nil, err
	}
	return app.Installations(ctx, served)
}

// Gone reports whether GitHub says the App's installation id is no more.
func (g *GitHubApp) Gone(ctx context.Context, id int64) (bool, error) {
	app, _, err := g.Current(ctx)
	if err != nil {
		return false, err
	}
	return app.Gone(ctx, id)
}

// ID is the App's id.
func (g *GitHubApp) ID(ctx context.Context) (int64, error) {
	_, s, err := g.Current(ctx)
	return s.ID, err
}
