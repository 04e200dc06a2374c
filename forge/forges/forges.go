// Package forges is the one list of the forges Albatros speaks: it maps a webhook endpoint to
// its forge's driver (headers, size limit, signature check, parser), and a registered
// repository to a long-lived client of its forge, one per server and token, sharing one
// HTTP transport.
//
// It decides which forge a repository is on; it does not decide anything about builds.
package forges

import (
	"crypto/sha256"
	"errors"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/albatros-ci/albatros/forge"
	"github.com/albatros-ci/albatros/forge/gitea"
	"github.com/albatros-ci/albatros/forge/github"
	"github.com/albatros-ci/albatros/registry"
)

// Driver is one forge's part in receiving webhooks.
type Driver struct {
	// Name is the forge's name in logs and URLs: gitea, github.
	Name string
	// EventHeader and DeliveryHeader name the delivery's event and its id.
	EventHeader, DeliveryHeader string
	// MaxBody is the largest delivery read.
	MaxBody int64
	// Verify checks a delivery's signature against secret.
	Verify func(h http.Header, body []byte, secret string) error
	// Parse reads a delivery once, before it is verified: its ev.Repo (set whatever the
	// error, when the body names a repository) picks the secret; the event, or the error
	// (see forge.ErrIgnoreEvent), is acted on once the body is verified.
	Parse func(h http.Header, body []byte) (forge.Event, error)
}

// The largest delivery each forge's endpoint reads. GitHub caps its own deliveries at
// 25 MiB; Gitea has no cap, and its payloads rarely pass 1 MiB (a push lists its commits,
// without diffs).
const (
	MaxGitHubBody = 25 << 20
	MaxGiteaBody  = 8 << 20
)

// The drivers.
var (
	Gitea  = Driver{"gitea", "X-Gitea-Event", "X-Gitea-Delivery", MaxGiteaBody, gitea.VerifySignature, gitea.Parse}
	GitHub = Driver{"github", "X-GitHub-Event", "X-GitHub-Delivery", MaxGitHubBody, github.VerifySignature, github.Parse}
)

// Config is the bot's own access to each forge, for repositories whose entry names none.
type Config struct {
	GiteaURL, GiteaToken   string
	GitHubURL, GitHubToken string
	// HTTP is the client every forge client shares (its transport pools connections).
	HTTP *http.Client
}

// HTTPClient is the client for Config.HTTP: one transport for every forge client, keeping
// as many idle connections per server as the bot handles deliveries at once (Go's default
// keeps 2: a burst of builds would open, and close, a connection per status write), and a
// 30-second limit per call.
func HTTPClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 64, 32
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// Forges hands out forge clients. Safe for concurrent use.
type Forges struct {
	cfg     Config
	mu      sync.Mutex
	clients map[clientKey]forge.Forge
}

// clientKey identifies a client: its forge, server and token (hashed: the map is no second
// copy of the tokens).
type clientKey struct {
	kind, url string
	token     [sha256.Size]byte
}

// New returns the forges of cfg.
func New(cfg Config) *Forges {
	if cfg.HTTP == nil {
		cfg.HTTP = http.DefaultClient
	}
	return &Forges{cfg: cfg, clients: map[clientKey]forge.Forge{}}
}

// For returns the client of a registered repository's forge, and the repository as that
// forge names it:
//
//   - an entry with a github field is on GitHub (its url, else the bot's GitHub API URL,
//     else github.com; its token, else the bot's GitHub token);
//   - a repository cloned from github.com, with no gitea field, is on GitHub too when the
//     bot has a GitHub token;
//   - any other is on Gitea: the entry's gitea.url and gitea.token (the original Albatros's
//     fields), else the bot's Gitea defaults.
//
// Clients live as long as the Forges: one per server and token.
func (f *Forges) For(entry *registry.Repo, cloneURL string) (forge.Forge, forge.Repo, error) {
	if gh := f.github(entry, cloneURL); gh != nil {
		repo, err := github.RepoFromCloneURL(cloneURL)
		if err != nil {
			return nil, forge.Repo{}, err
		}
		if gh.Token == "" {
			return nil, forge.Repo{}, errors.New("no github token: set it in the repository's entry (github.token) or give the bot one (ALBATROS_GITHUB_TOKEN)")
		}
		c, err := f.client("github", gh.URL, gh.Token, func() (forge.Forge, error) { return github.New(gh.URL, gh.Token, f.cfg.HTTP) })
		if err != nil {
			return nil, forge.Repo{}, err
		}
		return c, repo, nil
	}
	base, token := entry.Gitea.URL, entry.Gitea.Token
	if base == "" {
		base = f.cfg.GiteaURL
	}
	if token == "" {
		token = f.cfg.GiteaToken
	}
	if base == "" || token == "" {
		return nil, forge.Repo{}, errors.New("no gitea url and token: set them in the repository's entry (gitea.url, gitea.token) or give the bot defaults (ALBATROS_GITEA_URL, ALBATROS_GITEA_TOKEN)")
	}
	repo, err := gitea.RepoFromCloneURL(base, cloneURL)
	if err != nil {
		return nil, forge.Repo{}, err
	}
	c, _ := f.client("gitea", base, token, func() (forge.Forge, error) { return gitea.New(base, token, f.cfg.HTTP), nil })
	return c, repo, nil
}

// client returns the cached client of kind at url with token, making it with mk once.
func (f *Forges) client(kind, url, token string, mk func() (forge.Forge, error)) (forge.Forge, error) {
	key := clientKey{kind: kind, url: url, token: sha256.Sum256([]byte(token))}
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.clients[key]; ok {
		return c, nil
	}
	c, err := mk()
	if err != nil {
		return nil, err
	}
	f.clients[key] = c
	return c, nil
}

// github returns the GitHub access for the repository, or nil when it is not on GitHub.
func (f *Forges) github(entry *registry.Repo, cloneURL string) *registry.Access {
	acc := registry.Access{URL: f.cfg.GitHubURL, Token: f.cfg.GitHubToken}
	switch {
	case entry.GitHub != nil:
		if entry.GitHub.URL != "" {
			acc.URL = entry.GitHub.URL
		}
		if entry.GitHub.Token != "" {
			acc.Token = entry.GitHub.Token
		}
		return &acc
	case entry.Gitea.URL == "" && f.cfg.GitHubToken != "":
		if u, err := url.Parse(cloneURL); err == nil && u.Host == "github.com" {
			return &acc
		}
	}
	return nil
}

// GiteaBot returns the client of the bot's own Gitea account (Config's GiteaURL and
// GiteaToken), the same one For hands out for them; nil when the bot has none.
func (f *Forges) GiteaBot() *gitea.Client {
	if f.cfg.GiteaURL == "" || f.cfg.GiteaToken == "" {
		return nil
	}
	c, _ := f.client("gitea", f.cfg.GiteaURL, f.cfg.GiteaToken, func() (forge.Forge, error) {
		return gitea.New(f.cfg.GiteaURL, f.cfg.GiteaToken, f.cfg.HTTP), nil
	})
	return c.(*gitea.Client)
}
