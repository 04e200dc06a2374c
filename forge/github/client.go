// Package github is the GitHub driver of Albatros: it verifies and parses GitHub's webhook
// deliveries (push, pull_request, ping) into forge events, and writes commit statuses back
// through go-github, on github.com or a GitHub Enterprise Server. It is the only package that
// imports github.com/google/go-github.
//
// It acts as a GitHub App's installation (App), or with one token for a hand-registered
// repository. It writes commit statuses, not check runs (a status links to the bot's log
// page, as on Gitea), and reads only what the bot acts on.
package github

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	gh "github.com/google/go-github/v93/github"
	"golang.org/x/oauth2"

	"github.com/albatros-ci/albatros/forge"
)

// Client talks to one GitHub API, with one token or as one installation of an App.
type Client struct {
	// What GitHub's client does not do answers forge.ErrUnsupported.
	forge.Unsupported
	api *gh.Client
	// app and installation are set for an App's installation (App.Installation).
	app          *App
	installation int64
	// rate is the budget GitHub's last answer to the client told.
	rate *rate
}

var (
	_ forge.Forge        = (*Client)(nil)
	_ forge.StatusReader = (*Client)(nil)
)

// publicAPI is github.com's REST API, go-github's default base.
const publicAPI = "https://api.github.com/"

// New returns a client for the GitHub API at apiURL, acting with token (a personal access
// token, or any token that may write commit statuses). An empty apiURL, or
// https://api.github.com/, means github.com; anything else is taken as the API base of a
// GitHub Enterprise Server exactly as given (usually https://host/api/v3/). httpClient may be
// nil for http.DefaultClient; the token is layered over it, and its timeout is kept.
func New(apiURL, token string, httpClient *http.Client) (*Client, error) {
	if token == "" {
		return nil, errors.New("github: no token")
	}
	if httpClient == nil {
		httpClient = http.DefaultClient
	}
	base, err := apiBase(apiURL)
	if err != nil {
		return nil, err
	}
	hc := sameHost(httpClient)
	rt := &rate{}
	hc.Transport = rt.watch(hc.Transport)
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, hc)
	authed := oauth2.NewClient(ctx, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: token}))
	api, err := newAPI(authed, base)
	if err != nil {
		return nil, err
	}
	return &Client{api: api, rate: rt}, nil
}

// apiBase checks an API URL and returns it with its trailing slash (publicAPI for "").
func apiBase(apiURL string) (string, error) {
	if apiURL == "" {
		return publicAPI, nil
	}
	base := strings.TrimSuffix(apiURL, "/") + "/"
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("github: api url %q: %w", apiURL, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("github: api url %q is not an http(s) url", apiURL)
	}
	return base, nil
}

// sameHost is a copy of c whose redirects stay on the host they started from: the
// token rides on every request, a redirected one included, and never reaches another host.
func sameHost(c *http.Client) *http.Client {
	out := *c
	out.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.URL.Host != via[0].URL.Host {
			return fmt.Errorf("github: refused a redirect from %s to %s, which would carry the token", via[0].URL.Host, req.URL.Host)
		}
		if len(via) >= 10 {
			return errors.New("github: stopped after 10 redirects")
		}
		return nil
	}
	return &out
}

// newAPI is go-github on hc at base.
func newAPI(hc *http.Client, base string) (*gh.Client, error) {
	opts := []gh.ClientOptionsFunc{gh.WithHTTPClient(hc)}
	if base != publicAPI {
		// WithEnterpriseURLs would append api/v3/ to any base not ending in it, which a
		// proxy or a test server does not serve; the base is used as given instead. The bot
		// uploads nothing, so the upload base is the same server: no request leaves it.
		opts = append(opts, gh.WithURLs(&base, &base))
	}
	api, err := gh.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("github: %w", err)
	}
	return api, nil
}

// maxDescription is GitHub's limit on a status description, in characters; a longer one is
// refused with 422.
const maxDescription = 140

// SetStatus writes a commit status on s.Repo at s.Commit. A description longer than GitHub
// accepts is cut, ending in "…".
func (c *Client) SetStatus(ctx context.Context, s forge.Status) error {
	_, _, err := c.api.Repositories.CreateStatus(ctx, s.Repo.Owner, s.Repo.Name, s.Commit, gh.RepoStatus{
		State:       gh.Ptr(string(s.State)),
		TargetURL:   gh.Ptr(s.TargetURL),
		Description: gh.Ptr(truncate(s.Description, maxDescription)),
		Context:     gh.Ptr(s.Context),
	})
	if err != nil {
		return fmt.Errorf("github: set %s status %s on %s@%s: %w", s.Context, s.State, s.Repo.FullName, short(s.Commit), err)
	}
	return nil
}

// truncate cuts s to at most n characters (runes), the last being "…" when it cut.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	runes := []rune(s)
	return string(runes[:n-1]) + "…"
}

// LatestStatus returns the newest status of commit in context ctxName; ok is false when the
// commit has none there. It reads the first 100 statuses of the commit, newest first, which
// holds the newest of every context unless more than 100 were written after it.
func (c *Client) LatestStatus(ctx context.Context, repo forge.Repo, commit, ctxName string) (forge.Status, bool, error) {
	list, _, err := c.api.Repositories.ListStatuses(ctx, repo.Owner, repo.Name, commit, &gh.ListOptions{PerPage: 100})
	if err != nil {
		return forge.Status{}, false, fmt.Errorf("github: statuses of %s@%s: %w", repo.FullName, short(commit), err)
	}
	// GitHub lists newest first, but ids are what orders them for sure: statuses written in
	// the same second share created_at.
	var newest *gh.RepoStatus
	for _, s := range list {
		if s.GetContext() == ctxName && (newest == nil || s.GetID() > newest.GetID()) {
			newest = s
		}
	}
	if newest == nil {
		return forge.Status{}, false, nil
	}
	return forge.Status{Repo: repo, Commit: commit, State: forge.State(newest.GetState()), Context: newest.GetContext(),
		Description: newest.GetDescription(), TargetURL: newest.GetTargetURL()}, true, nil
}

// RepoFromCloneURL names the repository behind an HTTP(S) clone URL of github.com or of a
// GitHub Enterprise Server (both serve repositories at the root: https://host/owner/name.git).
// The clone URL is kept as given; the web page drops any user info.
func RepoFromCloneURL(cloneURL string) (forge.Repo, error) {
	u, err := url.Parse(cloneURL)
	if err != nil {
		return forge.Repo{}, fmt.Errorf("clone url %q: %w", cloneURL, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return forge.Repo{}, fmt.Errorf("clone url %q is not an http(s) url", cloneURL)
	}
	rest := strings.TrimSuffix(strings.TrimPrefix(u.Path, "/"), ".git")
	owner, name, ok := strings.Cut(rest, "/")
	if !ok || owner == "" || name == "" || strings.Contains(name, "/") {
		return forge.Repo{}, fmt.Errorf("clone url %q does not name owner/repo", cloneURL)
	}
	html := url.URL{Scheme: u.Scheme, Host: u.Host, Path: "/" + owner + "/" + name}
	return forge.Repo{CloneURL: cloneURL, FullName: owner + "/" + name, Owner: owner, Name: name, HTMLURL: html.String()}, nil
}

func short(sha string) string {
	if len(sha) > 10 {
		return sha[:10]
	}
	return sha
}

var _ forge.RepoReaders = (*Client)(nil)

// IsPrivate reports whether repo is private; a repository the token cannot see counts as
// private.
func (c *Client) IsPrivate(ctx context.Context, repo forge.Repo) (bool, error) {
	r, resp, err := c.api.Repositories.Get(ctx, repo.Owner, repo.Name)
	if err != nil {
		if resp != nil && resp.StatusCode == http.StatusNotFound {
			return true, nil
		}
		return true, fmt.Errorf("github: repository %s: %w", repo.FullName, err)
	}
	return r.GetPrivate() || r.GetVisibility() == "internal", nil
}

// CanRead reports whether user, a GitHub login, may read repo: a collaborator of any
// permission (directly, through a team, or as an organization's member with its base
// permission).
func (c *Client) CanRead(ctx context.Context, repo forge.Repo, user string) (bool, error) {
	perm, _, err := c.permission(ctx, repo, user)
	return perm != "none" && perm != "", err
}
