// Package forges is the one list of the forges Albatros speaks: it maps a webhook endpoint to
// its forge's driver (headers, size limit, signature check, parser), and a registered
// repository to a long-lived client of its forge, one per server and token, sharing one
// HTTP transport.
//
// It decides which forge a repository is on; it does not decide anything about builds.
package forges

import (
	"context"
	"crypto/sha256"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/albatros-ci/albatros/forge"
	"github.com/albatros-ci/albatros/forge/gitea"
	"github.com/albatros-ci/albatros/forge/github"
	"github.com/albatros-ci/albatros/registry"
)

// Driver is one forge: a row of the table (Drivers). Its webhook endpoint, the headers and
// size of its deliveries, its signature check and parser, how a registered repository
// names its access to it, and how to make a client of it.
type Driver struct {
	// Name is the forge's name in logs, in URLs (/webhook/<name>) and in Config.Access:
	// gitea, github.
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

	// Entry is a registered repository's own access to this forge (its field of the
	// entry: gitea, github), nil when it names none.
	Entry func(e *registry.Repo) *registry.Access
	// Hosts are the hosts whose clone URLs are this forge's when the entry names no forge
	// and the bot has a token for it (github.com).
	Hosts []string
	// NeedsURL says a URL must be known (the entry's or the bot's): a forge without one
	// public instance.
	NeedsURL bool
	// Repo is a clone URL's repository as the forge at base (its API URL) names it.
	Repo func(base, cloneURL string) (forge.Repo, error)
	// New makes a client of the forge at url ("": the driver's default) acting with token.
	New func(url, token string, hc *http.Client) (forge.Forge, error)
	// Missing says what to set when no token (or no URL) is known.
	Missing string
}

// Path is the driver's webhook endpoint.
func (d Driver) Path() string { return "/webhook/" + d.Name }

// The largest delivery each forge's endpoint reads. GitHub caps its own deliveries at
// 25 MiB; Gitea has no cap, and its payloads rarely pass 1 MiB (a push lists its commits,
// without diffs).
const (
	MaxGitHubBody = 25 << 20
	MaxGiteaBody  = 8 << 20
)

// The drivers, and Drivers, the table: adding a forge is a package forge/<name> and a row
// here. No other package imports a driver.
var (
	Gitea = Driver{
		Name: "gitea", EventHeader: "X-Gitea-Event", DeliveryHeader: "X-Gitea-Delivery", MaxBody: MaxGiteaBody,
		Verify: gitea.VerifySignature, Parse: gitea.Parse,
		Entry: func(e *registry.Repo) *registry.Access {
			if e.Gitea.URL == "" && e.Gitea.Token == "" {
				return nil
			}
			return &e.Gitea
		},
		NeedsURL: true,
		Repo:     gitea.RepoFromCloneURL,
		New: func(url, token string, hc *http.Client) (forge.Forge, error) {
			return gitea.New(url, token, hc), nil
		},
		Missing: "no gitea url and token: set them in the repository's entry (gitea.url, gitea.token) or give the bot defaults (ALBATROS_GITEA_URL, ALBATROS_GITEA_TOKEN)",
	}
	GitHub = Driver{
		Name: "github", EventHeader: "X-GitHub-Event", DeliveryHeader: "X-GitHub-Delivery", MaxBody: MaxGitHubBody,
		Verify: github.VerifySignature, Parse: github.Parse,
		Entry: func(e *registry.Repo) *registry.Access { return e.GitHub },
		Hosts: []string{"github.com"},
		Repo:  func(_, cloneURL string) (forge.Repo, error) { return github.RepoFromCloneURL(cloneURL) },
		New: func(url, token string, hc *http.Client) (forge.Forge, error) {
			return github.New(url, token, hc)
		},
		Missing: "no github token: set it in the repository's entry (github.token) or give the bot one (ALBATROS_GITHUB_TOKEN)",
	}
	// Drivers are the forges, in the order an entry is matched (see For); the last is the
	// fallback, the original Albatros's forge.
	Drivers = []Driver{GitHub, Gitea}
)

// Hook is the driver whose signature the original /hook?token= endpoint checks, when the
// entry has a webhook secret too.
var Hook = Gitea

// ByName returns the driver named name.
func ByName(name string) (Driver, bool) {
	for _, d := range Drivers {
		if d.Name == name {
			return d, true
		}
	}
	return Driver{}, false
}

// Config is the bot's own access to each forge, by driver name, for repositories whose
// entry names none.
type Config struct {
	Access map[string]registry.Access
	// App, when set, is the bot's GitHub App: the repositories of its installations are
	// reached through it.
	App *GitHubApp
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
// forge names it. The forge is the one the entry names (a github field: GitHub; gitea
// fields, the original Albatros's: Gitea); else the one whose host the clone URL is on,
// when the bot has a token for it (github.com); else the last of Drivers (Gitea). Its URL
// and token are the entry's, else the bot's (Config.Access).
//
// Clients live as long as the Forges: one per server and token.
func (f *Forges) For(entry *registry.Repo, cloneURL string) (forge.Forge, forge.Repo, error) {
	if entry.AppInstallation != 0 {
		// An installation of the bot's GitHub App: one client per installation, not per
		// token (its token changes every hour).
		if f.cfg.App == nil {
			return nil, forge.Repo{}, ErrNoApp
		}
		repo, err := github.RepoFromCloneURL(cloneURL)
		if err != nil {
			return nil, forge.Repo{}, err
		}
		c, err := f.cfg.App.Installation(context.Background(), entry.AppInstallation)
		if err != nil {
			return nil, forge.Repo{}, err
		}
		return c, repo, nil
	}
	d, acc := f.driver(entry, cloneURL)
	if acc.Token == "" || (d.NeedsURL && acc.URL == "") {
		return nil, forge.Repo{}, errors.New(d.Missing)
	}
	repo, err := d.Repo(acc.URL, cloneURL)
	if err != nil {
		return nil, forge.Repo{}, err
	}
	c, err := f.client(d.Name, acc.URL, acc.Token, func() (forge.Forge, error) { return d.New(acc.URL, acc.Token, f.cfg.HTTP) })
	if err != nil {
		return nil, forge.Repo{}, err
	}
	return c, repo, nil
}

// driver is the forge of a registered repository, and its access there: the entry's own,
// completed with the bot's.
func (f *Forges) driver(entry *registry.Repo, cloneURL string) (Driver, registry.Access) {
	with := func(d Driver, own *registry.Access) (Driver, registry.Access) {
		acc := f.cfg.Access[d.Name]
		if own != nil {
			if own.URL != "" {
				acc.URL = own.URL
			}
			if own.Token != "" {
				acc.Token = own.Token
			}
		}
		return d, acc
	}
	for _, d := range Drivers {
		if own := d.Entry(entry); own != nil {
			return with(d, own)
		}
	}
	if u, err := url.Parse(cloneURL); err == nil {
		for _, d := range Drivers {
			if slices.Contains(d.Hosts, u.Host) && f.cfg.Access[d.Name].Token != "" {
				return with(d, nil)
			}
		}
	}
	return with(Drivers[len(Drivers)-1], nil)
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

// GiteaBot returns the client of the bot's own Gitea account (Config.Access of gitea),
// the same one For hands out for it; nil when the bot has none.
func (f *Forges) GiteaBot() *gitea.Client {
	acc := f.cfg.Access[Gitea.Name]
	if acc.URL == "" || acc.Token == "" {
		return nil
	}
	c, _ := f.client(Gitea.Name, acc.URL, acc.Token, func() (forge.Forge, error) {
		return Gitea.New(acc.URL, acc.Token, f.cfg.HTTP)
	})
	return c.(*gitea.Client)
}
