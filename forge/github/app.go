package github

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/bradleyfalzon/ghinstallation/v2"
	gh "github.com/google/go-github/v93/github"

	"github.com/albatros-ci/albatros/forge"
)

// AppConfig is a GitHub App as the bot acts as it: its id and private key (PEM), and the
// API it lives on.
type AppConfig struct {
	ID         int64
	PrivateKey []byte
	// APIURL is the REST API's base: empty (or https://api.github.com/) for github.com,
	// else a GitHub Enterprise Server's (https://host/api/v3/), used as given.
	APIURL string
	// HTTP carries every request (its transport pools connections, its timeout bounds
	// each call); nil for http.DefaultClient.
	HTTP *http.Client
}

// App acts as a GitHub App: as itself (a JWT signed with its key) to learn its name and
// to get installation tokens, and as each of its installations with that installation's
// token. Installation tokens last an hour: each installation's is kept in memory only,
// renewed a minute before it expires (ghinstallation), and renewed at once when GitHub
// answers 401 to it (a token revoked, or a clock ahead), the request then tried once more.
// Clients are kept per installation, not per token, and Forget drops one. Safe for
// concurrent use.
type App struct {
	cfg  AppConfig
	base string // the API base, with its trailing slash
	apps *ghinstallation.AppsTransport
	api  *gh.Client // as the App itself

	mu      sync.Mutex
	clients map[int64]*Client
	slug    string
}

// NewApp returns the App of cfg; its key is parsed now.
func NewApp(cfg AppConfig) (*App, error) {
	if cfg.ID <= 0 {
		return nil, errors.New("github app: no app id")
	}
	if cfg.HTTP == nil {
		cfg.HTTP = http.DefaultClient
	}
	base, err := apiBase(cfg.APIURL)
	if err != nil {
		return nil, err
	}
	tr := cfg.HTTP.Transport
	if tr == nil {
		tr = http.DefaultTransport
	}
	apps, err := ghinstallation.NewAppsTransport(tr, cfg.ID, cfg.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("github app %d: private key: %w", cfg.ID, err)
	}
	apps.BaseURL = strings.TrimSuffix(base, "/")
	a := &App{cfg: cfg, base: base, apps: apps, clients: map[int64]*Client{}}
	if a.api, err = newAPI(a.httpClient(apps), base); err != nil {
		return nil, err
	}
	return a, nil
}

// httpClient is cfg.HTTP with tr as its transport, redirects kept on their host.
func (a *App) httpClient(tr http.RoundTripper) *http.Client {
	c := sameHost(a.cfg.HTTP)
	c.Transport = tr
	return c
}

// Slug returns the App's name in URLs (its bot user is <slug>[bot]), asked of GitHub once.
func (a *App) Slug(ctx context.Context) (string, error) {
	a.mu.Lock()
	slug := a.slug
	a.mu.Unlock()
	if slug != "" {
		return slug, nil
	}
	app, _, err := a.api.Apps.Get(ctx, "")
	if err != nil {
		return "", fmt.Errorf("github app %d: %w", a.cfg.ID, err)
	}
	if app.GetSlug() == "" {
		return "", fmt.Errorf("github app %d: GitHub gave no slug", a.cfg.ID)
	}
	a.mu.Lock()
	a.slug = app.GetSlug()
	a.mu.Unlock()
	return app.GetSlug(), nil
}

// Installation returns the client of installation id, made once and kept until Forget.
func (a *App) Installation(id int64) (*Client, error) {
	if id <= 0 {
		return nil, fmt.Errorf("github app %d: no installation id", a.cfg.ID)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if c, ok := a.clients[id]; ok {
		return c, nil
	}
	r := &renewing{apps: a.apps, id: id}
	r.renew(nil)
	rt := &rate{}
	api, err := newAPI(a.httpClient(rt.watch(r)), a.base)
	if err != nil {
		return nil, err
	}
	c := &Client{api: api, app: a, installation: id, rate: rt}
	a.clients[id] = c
	return c, nil
}

// Forget drops the client of installation id (uninstalled): its token goes with it.
func (a *App) Forget(id int64) {
	a.mu.Lock()
	delete(a.clients, id)
	a.mu.Unlock()
}

// renewing is an installation's transport: ghinstallation's, which puts the installation
// token on each request and renews it before it expires, made anew (a new token) when
// GitHub answers 401 all the same.
type renewing struct {
	apps *ghinstallation.AppsTransport
	id   int64

	mu  sync.Mutex
	cur *ghinstallation.Transport
}

// renew replaces the transport, unless another request has replaced old already.
func (r *renewing) renew(old *ghinstallation.Transport) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cur == old {
		r.cur = ghinstallation.NewFromAppsTransport(r.apps, r.id)
		r.cur.BaseURL = r.apps.BaseURL
	}
}

func (r *renewing) current() *ghinstallation.Transport {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cur
}

// RoundTrip sends req with the installation's token; on a 401, once more with a new one.
func (r *renewing) RoundTrip(req *http.Request) (*http.Response, error) {
	t := r.current()
	again := req.Clone(req.Context())
	if req.Body != nil && req.Body != http.NoBody {
		if req.GetBody == nil {
			return t.RoundTrip(req) // a body that cannot be sent twice is sent once
		}
		body, err := req.GetBody()
		if err != nil {
			return nil, err
		}
		again.Body = body
	}
	resp, err := t.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		if again.Body != nil {
			again.Body.Close()
		}
		return resp, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	r.renew(t)
	return r.current().RoundTrip(again)
}

// Installations lists the App's installations, as GitHub has them now (GET
// /app/installations, as the App): each with its account, its repository selection, and
// for a selection of some repositories of an account served (a nil served serves all),
// those repositories, read with the installation's token (ReposUnknown when they could not
// be, or were more than a listing reads). Suspended installations are listed with Action
// "suspend", the others "created".
func (a *App) Installations(ctx context.Context, served func(login string, id int64) bool) ([]forge.Install, error) {
	var out []forge.Install
	opts := &gh.ListOptions{PerPage: 100}
	for page := 0; ; page++ {
		if page == maxPages {
			return nil, fmt.Errorf("github app %d: more than %d pages of installations", a.cfg.ID, maxPages)
		}
		list, resp, err := a.api.Apps.ListInstallations(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("github app %d: installations: %w", a.cfg.ID, err)
		}
		for _, in := range list {
			got := forge.Install{Action: "created", ID: in.GetID(), Account: in.GetAccount().GetLogin(), AccountID: in.GetAccount().GetID(),
				AccountType: in.GetAccount().GetType(), Selection: in.GetRepositorySelection()}
			if in.SuspendedAt != nil {
				got.Action = "suspend"
			}
			if got.Selection == "selected" && got.Action != "suspend" && (served == nil || served(got.Account, got.AccountID)) {
				// One installation's listing failing leaves its repositories as recorded,
				// not the others'.
				c, err := a.Installation(got.ID)
				var repos []forge.Repo
				if err == nil {
					repos, err = c.OrgRepos(ctx, got.Account)
				}
				got.Added, got.ReposUnknown = repos, err != nil || len(repos) >= maxPages*100
			}
			out = append(out, got)
		}
		if resp.NextPage == 0 {
			return out, nil
		}
		opts.Page = resp.NextPage
	}
}

// Gone reports whether GitHub says the App's installation id is no more (404 to the App's
// GET /app/installations/{id}).
func (a *App) Gone(ctx context.Context, id int64) (bool, error) {
	_, resp, err := a.api.Apps.GetInstallation(ctx, id)
	switch {
	case err == nil:
		return false, nil
	case notFound(resp):
		return true, nil
	}
	return false, fmt.Errorf("github app %d: installation %d: %w", a.cfg.ID, id, err)
}
